package consume

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestTenThousandMessagesFiveFiltersTwoReplicas is issue 5's done-when:
// 10k messages with random tag sets over 100 tags, produced with batching
// as the proxy produces them, and five subscriptions with different
// filters. Two replicas serve every subscription: each receive goes to one
// and its ack to the other. Each subscription must get exactly its
// matching set (checked against predicates written independently of
// tagfilter), each message once, and the broker must end with no backlog.
func TestTenThousandMessagesFiveFiltersTwoReplicas(t *testing.T) {
	const total = 10000
	e := newEnv(t)
	a, b := e.node(), e.node()
	topic := newRef("")

	tag := func(i int) string { return fmt.Sprintf("PAY_%d", 1000+i) }
	type subCase struct {
		name, filter string
		want         func(set map[string]bool) bool
	}
	cases := []subCase{
		{"rocketmq-or", "PAY_1001 || PAY_1002", func(s map[string]bool) bool { return s["PAY_1001"] || s["PAY_1002"] }},
		{"and-not", "(PAY_1010 || PAY_1011 || PAY_1012) && !PAY_1013", func(s map[string]bool) bool {
			return (s["PAY_1010"] || s["PAY_1011"] || s["PAY_1012"]) && !s["PAY_1013"]
		}},
		{"all", "*", func(map[string]bool) bool { return true }},
		{"most", "!PAY_1050 && !PAY_1051", func(s map[string]bool) bool { return !s["PAY_1050"] && !s["PAY_1051"] }},
		{"one", "PAY_1099", func(s map[string]bool) bool { return s["PAY_1099"] }},
	}
	refs := make([]SubscriptionRef, len(cases))
	for i, c := range cases {
		refs[i] = topic
		refs[i].Subscription = c.name
		a.put(refs[i], SubscriptionSpec{TagFilter: c.filter})
	}

	rng := rand.New(rand.NewPCG(5, 5))
	msgs := make([]testMsg, total)
	for i := range msgs {
		n := rng.IntN(4) // 0 to 3 tags
		var tags []string
		for range n {
			tags = append(tags, tag(rng.IntN(100)))
		}
		msgs[i] = newMsg(tags...)
	}
	produce(t, e.client, topic.TopicName(), msgs)

	var wg sync.WaitGroup
	for i, c := range cases {
		var want []string
		for _, m := range msgs {
			set := map[string]bool{}
			for _, tg := range m.tags {
				set[tg] = true
			}
			if c.want(set) {
				want = append(want, m.uid)
			}
		}
		slices.Sort(want)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ref := refs[i]
			nodes := [2]*node{a, b}
			seen := map[string]int{}
			var got []string
			deadline := time.Now().Add(60 * time.Second)
			for turn := 0; len(got) < len(want) && time.Now().Before(deadline); turn++ {
				recv, ackr := nodes[turn%2], nodes[(turn+1)%2]
				batch := recv.receive(ref, 500, 200)
				if len(batch) == 0 {
					continue
				}
				for _, m := range batch {
					seen[m.UID]++
					if seen[m.UID] == 1 {
						got = append(got, m.UID)
					}
				}
				require.Equal(t, AckResponse{Acked: len(batch)}, ackr.ack(ref, batch...), "%s", c.name)
			}
			// Nothing more may come, from either replica.
			require.Empty(t, a.receive(ref, 100, 300), "%s: extra messages on a", c.name)
			require.Empty(t, b.receive(ref, 100, 300), "%s: extra messages on b", c.name)
			slices.Sort(got)
			require.Equal(t, len(want), len(got), "%s: count", c.name)
			require.Equal(t, want, got, "%s: set", c.name)
			for uid, n := range seen {
				require.Equal(t, 1, n, "%s: %s delivered %d times", c.name, uid, n)
			}
			t.Logf("%s (%s): %d of %d messages", c.name, c.filter, len(got), total)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		e.backlogZero(e.broker, refs[i])
		require.Eventually(t, func() bool {
			st := a.stats(refs[i])
			return st.Totals.Filtered+st.Totals.Delivered == total && st.Totals.Acked == st.Totals.Delivered
		}, 10*time.Second, 100*time.Millisecond, "%s: stats %+v", c.name, a.stats(refs[i]).Totals)
	}
}
