package consume

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
)

// forgetDeadScript removes a message's delivery state when it is 'd'
// (dead-lettered), from the previous bucket, the current one and the
// next few (a write that must live long is copied ahead); ARGV[2] is the
// state id. It answers 1 when it removed one, 0 otherwise (no state,
// or a state other than dead-lettered: left alone).
var forgetDeadScript = redis.NewScript(statePrelude + `
local v = lookup({ARGV[2]})[1]
if v and string.sub(v, 1, 1) == 'd' then
  for b = cb - 1, cb + 4 do
    redis.call('HDEL', root .. b, ARGV[2])
  end
  return {1}
end
return {0}
`)

// ForgetDeadLetter lets a message that was dead-lettered on ref be
// delivered again to ref: a copy resent to the topic with the same uid
// (the console's dead-letter resend) would otherwise be taken for a
// copy of a message already done and dropped (the per-subscription
// duplicate check, ADR 060). props are the dead letter's properties (its
// psc-uid, and psc-idempotency-key when ref deduplicates by key). It
// reports whether a dead-lettered state was removed; any other state
// (leased, acknowledged) is left alone, and so is a state already gone
// (past the dedup window), where the resent copy is delivered anyway.
func (s *Service) ForgetDeadLetter(ctx context.Context, ref SubscriptionRef, props map[string]string) (bool, error) {
	sub, err := s.config(ctx, ref)
	if err != nil {
		return false, err
	}
	uid := props[wire.PropUID]
	if uid == "" || len(uid) > maxUIDBytes {
		return false, fmt.Errorf("consume: forget dead letter on %s: the message has no usable %s", ref.Path(), wire.PropUID)
	}
	var kh string
	if sub.byKey() {
		kh = keyHashOf(props)
	}
	id := stateIDFor(uid, retryStepOf(props), copyKey{}, kh)
	sp := s.states.space(ref.binding(), sub.ackTimeout)
	got, err := s.states.eval(ctx, forgetDeadScript, sp, 1, []any{s.states.widthArg(), id}, 1)
	if err != nil {
		return false, fmt.Errorf("consume: forget dead letter on %s: %w", ref.Path(), err)
	}
	return len(got) > 0 && got[0] == 1, nil
}
