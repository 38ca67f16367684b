package minipulsar

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// Topic termination, as Pulsar's PersistentTopic.terminate: the topic takes
// no more messages, ever. Its producers are closed (they re-register and
// get TopicTerminatedError, which makes pulsar-client-go close them), a
// SEND that still arrives gets a TopicTerminatedError SEND_ERROR, new
// producers are refused, and a consumer whose subscription has acknowledged
// everything gets REACHED_END_OF_TOPIC. Termination is kept in memory (not
// in the data directory).

// ErrPartitionedTermination refuses terminating a partitioned topic as a
// whole, as Pulsar does; its partitions can be terminated one by one.
var ErrPartitionedTermination = errors.New("minipulsar: termination of a partitioned topic is not allowed")

// TerminateTopic terminates a non-partitioned topic (or one partition) and
// returns the id of its last message (entry -1 when it has none).
func (s *Server) TerminateTopic(name string) (ledgerID uint64, entryID int64, err error) {
	tn, err := parseTopic(name)
	if err != nil {
		return 0, 0, err
	}
	if s.partitionsOf(tn) > 0 {
		return 0, 0, fmt.Errorf("%w: %s", ErrPartitionedTermination, tn)
	}
	t, err := s.getTopic(tn, false)
	if err != nil {
		return 0, 0, err
	}
	t.mu.Lock()
	t.terminated = true
	prods := make([]*producer, 0, len(t.producers)+len(t.waiting))
	for p := range t.producers {
		prods = append(prods, p)
	}
	prods = append(prods, t.waiting...)
	entryID = -1
	if id, ok := t.lastID(); ok {
		entryID = int64(id)
	}
	var ends []*consumer
	for _, sub := range t.subs {
		ends = append(ends, sub.endOfTopicLocked()...)
	}
	t.mu.Unlock()
	for _, p := range prods {
		p.closeByBroker()
	}
	sendEndOfTopic(ends)
	return t.ledger, entryID, nil
}

func (t *topic) isTerminated() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.terminated
}

// endOfTopicLocked lists the consumers to tell that they reached the end of
// a terminated topic: Pulsar tells them once the subscription has nothing
// left to read and every message is acknowledged. Each consumer is told
// once per registration. Caller holds t.mu.
func (sub *subscription) endOfTopicLocked() []*consumer {
	t := sub.t
	if !t.terminated || len(sub.consumers) == 0 {
		return nil
	}
	if n, _ := sub.backlog(); n > 0 {
		return nil
	}
	var out []*consumer
	for _, c := range sub.consumers {
		if !c.endNotified {
			c.endNotified = true
			out = append(out, c)
		}
	}
	return out
}

// sendEndOfTopic sends REACHED_END_OF_TOPIC. The generated wire code has
// no message for it, so the command is written by hand: BaseCommand field
// 27 holding CommandReachedEndOfTopic{consumer_id = 1}. pulsar-client-go
// v0.19.0 does not handle this command and closes its connection on it,
// as it does with a real Pulsar.
func sendEndOfTopic(consumers []*consumer) {
	for _, c := range consumers {
		inner := protowire.AppendTag(nil, 1, protowire.VarintType)
		inner = protowire.AppendVarint(inner, c.id)
		raw := protowire.AppendTag(nil, 27, protowire.BytesType)
		raw = protowire.AppendBytes(raw, inner)
		cmd := &pb.BaseCommand{Type: pb.BaseCommand_REACHED_END_OF_TOPIC.Enum()}
		cmd.ProtoReflect().SetUnknown(raw)
		c.c.send(cmd, nil)
	}
}

// terminate serves POST .../{topic}/terminate with the last message id.
func (a *admin) terminate(w http.ResponseWriter, r *http.Request) error {
	tn, err := topicFromPath(r)
	if err != nil {
		return err
	}
	ledger, entry, err := a.s.TerminateTopic(tn.String())
	if errors.Is(err, ErrPartitionedTermination) {
		return httpErr(http.StatusMethodNotAllowed, "Termination of a partitioned topic is not allowed")
	}
	if err != nil {
		return err
	}
	_, part := tn.base()
	writeJSON(w, http.StatusOK, struct {
		LedgerID       int64 `json:"ledgerId"`
		EntryID        int64 `json:"entryId"`
		PartitionIndex int   `json:"partitionIndex"`
	}{int64(ledger), entry, part})
	return nil
}
