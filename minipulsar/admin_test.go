package minipulsar_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/rest"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// --- helpers ---

func adminOf(t *testing.T, s *minipulsar.Server) pulsaradmin.Client {
	t.Helper()
	a, err := pulsaradmin.NewClient(&pulsaradmin.Config{WebServiceURL: s.AdminURL()})
	require.NoError(t, err)
	return a
}

func clientOf(t *testing.T, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second,
		Logger: plog.DefaultNopLogger()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func tname(t *testing.T, name string) utils.TopicName {
	t.Helper()
	tn, err := utils.GetTopicName(name)
	require.NoError(t, err)
	return *tn
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// adminStatus is the HTTP status of a pulsaradmin error (0 when it is not one).
func adminStatus(err error) int {
	var re rest.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// producerOf makes a producer; batched producers gather messages until
// Flush (or batchSize messages).
func producerOf(t *testing.T, c pulsar.Client, topic string, batched bool, opts pulsar.ProducerOptions) pulsar.Producer {
	t.Helper()
	opts.Topic = topic
	opts.DisableBatching = !batched
	if batched {
		opts.BatchingMaxPublishDelay = time.Hour
		if opts.BatchingMaxMessages == 0 {
			opts.BatchingMaxMessages = 1000
		}
	}
	p, err := c.CreateProducer(opts)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// sendAll publishes messages asynchronously, flushes and returns their ids.
func sendAll(t *testing.T, p pulsar.Producer, msgs ...*pulsar.ProducerMessage) []pulsar.MessageID {
	t.Helper()
	ids := make([]pulsar.MessageID, len(msgs))
	errs := make([]error, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		p.SendAsync(ctxOf(t), m, func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			ids[i], errs[i] = id, err
			wg.Done()
		})
	}
	require.NoError(t, p.Flush())
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return ids
}

func payloads(n int, prefix string) []*pulsar.ProducerMessage {
	out := make([]*pulsar.ProducerMessage, n)
	for i := range out {
		out[i] = &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("%s-%d", prefix, i))}
	}
	return out
}

func receiveN(t *testing.T, c pulsar.Consumer, n int) []pulsar.Message {
	t.Helper()
	out := make([]pulsar.Message, 0, n)
	for len(out) < n {
		m, err := c.Receive(ctxOf(t))
		require.NoError(t, err, "after %d of %d messages", len(out), n)
		out = append(out, m)
	}
	return out
}

func payloadStrings(msgs []*utils.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Payload)
	}
	return out
}

// eventually retries f until it passes (every 20 ms, up to 10 s), for state
// reached asynchronously (acks are grouped by the client every 100 ms).
func eventually(t *testing.T, f func(c *assertT)) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := &assertT{}
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(assertAbort); !ok {
						panic(r)
					}
				}
			}()
			f(c)
		}()
		if !c.failed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached: %s", c.msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type assertT struct {
	failed bool
	msg    string
}

func (a *assertT) Errorf(format string, args ...any) {
	a.failed, a.msg = true, fmt.Sprintf(format, args...)
}

func (a *assertT) FailNow() { a.failed = true; panic(assertAbort{}) }

type assertAbort struct{}

// --- topics ---

func TestAdminTopics(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	topics := adm.Topics()

	np := tname(t, "plain")
	require.NoError(t, topics.Create(np, 0))
	require.Equal(t, http.StatusConflict, adminStatus(topics.Create(np, 0)), "creating twice conflicts")

	pt := tname(t, "persistent://public/default/parts")
	require.NoError(t, topics.Create(pt, 3))
	require.Equal(t, http.StatusConflict, adminStatus(topics.Create(pt, 3)))
	md, err := topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Equal(t, 3, md.Partitions)
	md, err = topics.GetMetadata(np)
	require.NoError(t, err)
	require.Zero(t, md.Partitions, "a non-partitioned topic has 0 partitions")
	md, err = topics.GetMetadata(tname(t, "never-created"))
	require.NoError(t, err)
	require.Zero(t, md.Partitions, "an unknown topic has 0 partitions, as on Pulsar")

	require.NoError(t, topics.Update(pt, 5))
	md, err = topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Equal(t, 5, md.Partitions)
	require.Equal(t, http.StatusConflict, adminStatus(topics.Update(pt, 4)), "partitions never shrink")
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Update(np, 4)), "a non-partitioned topic cannot be updated")

	npp := tname(t, "non-persistent://public/default/volatile")
	require.NoError(t, topics.Create(npp, 0))

	ns, err := utils.GetNamespaceName("public/default")
	require.NoError(t, err)
	partitioned, nonPartitioned, err := topics.List(*ns)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"persistent://public/default/parts"}, partitioned)
	want := []string{"persistent://public/default/plain", "non-persistent://public/default/volatile"}
	for i := 0; i < 5; i++ {
		want = append(want, fmt.Sprintf("persistent://public/default/parts-partition-%d", i))
	}
	require.ElementsMatch(t, want, nonPartitioned, "partitions are listed with non-partitioned topics, as on Pulsar")
	nsTopics, err := adm.Namespaces().GetTopics("public/default")
	require.NoError(t, err)
	require.Contains(t, nsTopics, "persistent://public/default/plain")
	require.Equal(t, want[:1], filter(s.Topics(), "plain"))

	require.NoError(t, topics.Delete(np, false, true))
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Delete(np, false, true)), "deleting twice")
	require.Equal(t, http.StatusNotFound, adminStatus(topics.Delete(np, true, false)), "not a partitioned topic")

	require.NoError(t, topics.Delete(pt, false, false))
	partitioned, nonPartitioned, err = topics.List(*ns)
	require.NoError(t, err)
	require.Empty(t, partitioned)
	require.Equal(t, []string{"non-persistent://public/default/volatile"}, nonPartitioned)
	md, err = topics.GetMetadata(pt)
	require.NoError(t, err)
	require.Zero(t, md.Partitions)

	// A topic in use is deleted only with force.
	c := clientOf(t, s.ServiceURL())
	busy := tname(t, "busy")
	producerOf(t, c, "busy", false, pulsar.ProducerOptions{})
	require.Equal(t, http.StatusPreconditionFailed, adminStatus(topics.Delete(busy, false, true)))
	require.NoError(t, topics.Delete(busy, true, true))
}

func filter(names []string, sub string) []string {
	var out []string
	for _, n := range names {
		if strings.Contains(n, sub) {
			out = append(out, n)
		}
	}
	return out
}

// --- stats ---

func TestAdminStats(t *testing.T) {
	clock := minipulsar.NewFakeClock(time.Now())
	s := minipulsar.RunOptionsT(t, minipulsar.Options{Clock: clock})
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "stats")

	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "stats", SubscriptionName: "sub", Name: "cons-1", Type: pulsar.Shared})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "stats", false, pulsar.ProducerOptions{Name: "prod-1"})
	msgs := payloads(10, strings.Repeat("x", 100))
	sendAll(t, p, msgs...)
	got := receiveN(t, cons, 10)
	for _, m := range got[:4] {
		require.NoError(t, cons.Ack(m))
	}

	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		sub, ok := st.Subscriptions["sub"]
		require.True(a, ok)
		require.EqualValues(a, 6, sub.MsgBacklog)
		require.EqualValues(a, 6, sub.UnAckedMessages)
	})
	st, err := adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.EqualValues(t, 10, st.MsgCounterIn)
	require.EqualValues(t, 10, st.MsgCounterOut)
	require.Greater(t, st.StorageSize, int64(10*100))
	require.Greater(t, st.BacklogSize, int64(6*100))
	require.Equal(t, "Disabled", st.DeDuplicationStatus)
	require.Len(t, st.Publishers, 1)
	require.Equal(t, "prod-1", st.Publishers[0].ProducerName)
	require.EqualValues(t, "Shared", st.Publishers[0].AccessModel)
	require.NotEmpty(t, st.Publishers[0].Address)
	require.NotEmpty(t, st.Publishers[0].ConnectedSince)
	sub := st.Subscriptions["sub"]
	require.Equal(t, "Shared", sub.SubType)
	require.True(t, sub.IsDurable)
	require.EqualValues(t, 6, sub.MsgBacklogNoDelayed)
	require.Zero(t, sub.MsgDelayed)
	require.EqualValues(t, 10, sub.MsgOutCounter)
	require.Len(t, sub.Consumers, 1)
	cs := sub.Consumers[0]
	require.Equal(t, "cons-1", cs.ConsumerName)
	require.Equal(t, 6, cs.UnAckedMessages)
	require.EqualValues(t, 10, cs.MsgOutCounter)
	require.Positive(t, cs.AvailablePermits)
	require.NotEmpty(t, cs.Address)
	require.Zero(t, st.MsgRateIn, "the first sample has no rate")

	// Rates: 10 more messages in and out over 10 s of the broker's clock.
	sendAll(t, p, payloads(10, "more")...)
	receiveN(t, cons, 10)
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		require.EqualValues(a, 20, st.MsgCounterOut)
	})
	clock.Advance(10 * time.Second)
	st, err = adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.InDelta(t, 1.0, st.MsgRateIn, 1e-9)
	require.InDelta(t, 1.0, st.MsgRateOut, 1e-9)
	require.InDelta(t, 1.0, st.Subscriptions["sub"].MsgRateOut, 1e-9)
	require.InDelta(t, 1.0, st.Publishers[0].MsgRateIn, 1e-9)
	require.Positive(t, st.MsgThroughputIn)

	// A delayed message is in the backlog but not in msgBacklogNoDelayed.
	_, err = p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAfter: time.Hour})
	require.NoError(t, err)
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		sub := st.Subscriptions["sub"]
		require.EqualValues(a, 1, sub.MsgDelayed)
		require.Equal(a, sub.MsgBacklog-1, sub.MsgBacklogNoDelayed)
	})

	is, err := adm.Topics().GetInternalStats(tn)
	require.NoError(t, err)
	require.EqualValues(t, 21, is.EntriesAddedCounter)
	require.EqualValues(t, 21, is.NumberOfEntries)
	require.Contains(t, is.Cursors, "sub")
	require.Regexp(t, `^\d+:\d+$`, is.Cursors["sub"].MarkDeletePosition)

	_, err = adm.Topics().GetStats(tname(t, "no-such-topic"))
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}

func TestAdminPartitionedStats(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tn := tname(t, "pstats")
	require.NoError(t, adm.Topics().Create(tn, 3))
	c := clientOf(t, s.ServiceURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "pstats", SubscriptionName: "sub", Type: pulsar.Shared})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "pstats", false, pulsar.ProducerOptions{})
	msgs := payloads(30, "p")
	for i, m := range msgs {
		m.Key = strconv.Itoa(i)
	}
	sendAll(t, p, msgs...)

	st, err := adm.Topics().GetPartitionedStats(tn, true)
	require.NoError(t, err)
	require.Equal(t, 3, st.Metadata.Partitions)
	require.Len(t, st.Partitions, 3)
	var sum int64
	for name, ps := range st.Partitions {
		require.Contains(t, name, "pstats-partition-")
		sum += ps.MsgCounterIn
		require.Contains(t, ps.Subscriptions, "sub")
	}
	require.EqualValues(t, 30, sum)
	require.Len(t, st.Subscriptions["sub"].Consumers, 3, "one consumer per partition")
	require.Len(t, st.Publishers, 3, "one producer per partition")

	st, err = adm.Topics().GetPartitionedStats(tn, false)
	require.NoError(t, err)
	require.Empty(t, st.Partitions)

	_, err = adm.Topics().GetStats(tn)
	require.Equal(t, http.StatusNotFound, adminStatus(err), "a partitioned topic has no stats of its own")
	_, err = adm.Topics().GetPartitionedStats(tname(t, "nope"), true)
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}

// --- subscriptions ---

func TestAdminSubscriptions(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	subs := adm.Subscriptions()
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "subs")
	p := producerOf(t, c, "subs", false, pulsar.ProducerOptions{})
	ids := sendAll(t, p, payloads(5, "m")...)

	require.NoError(t, subs.Create(tn, "early", utils.Earliest))
	require.NoError(t, subs.Create(tn, "late", utils.Latest))
	require.Equal(t, http.StatusConflict, adminStatus(subs.Create(tn, "late", utils.Latest)))
	backlog := func(sub string) int64 {
		t.Helper()
		n, err := s.Backlog("subs", sub)
		require.NoError(t, err)
		return n
	}
	require.EqualValues(t, 5, backlog("early"))
	require.EqualValues(t, 0, backlog("late"))
	list, err := subs.List(tn)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "late"}, list)

	require.NoError(t, subs.SkipMessages(tn, "early", 2))
	require.EqualValues(t, 3, backlog("early"))
	peeked, err := subs.PeekMessages(tn, "early", 1)
	require.NoError(t, err)
	require.Equal(t, []string{"m-2"}, payloadStrings(peeked), "skipping moves the cursor")
	require.NoError(t, subs.ClearBacklog(tn, "early"))
	require.EqualValues(t, 0, backlog("early"))

	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.MessageID{LedgerID: ids[1].LedgerID(), EntryID: ids[1].EntryID(), PartitionIndex: -1}))
	require.EqualValues(t, 4, backlog("early"), "reset to an id includes it")
	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.Latest))
	require.EqualValues(t, 0, backlog("early"))
	require.NoError(t, subs.ResetCursorToMessageID(tn, "early", utils.Earliest))
	require.EqualValues(t, 5, backlog("early"))

	stored, err := s.Messages("subs")
	require.NoError(t, err)
	ts := stored[3].PublishTime.UnixMilli()
	wantBacklog := 0
	for _, m := range stored {
		if m.PublishTime.UnixMilli() >= ts {
			wantBacklog++
		}
	}
	require.NoError(t, subs.ResetCursorToTimestamp(tn, "late", ts))
	require.EqualValues(t, wantBacklog, backlog("late"), "reset by time starts at the first message published at or after it")

	// Names are escaped twice by pulsaradmin and decoded twice here.
	odd := "we ird/name%41+é"
	require.NoError(t, subs.Create(tn, odd, utils.Earliest))
	list, err = subs.List(tn)
	require.NoError(t, err)
	require.Contains(t, list, odd)
	names, err := s.Subscriptions("subs")
	require.NoError(t, err)
	require.Contains(t, names, odd)
	require.NoError(t, subs.SkipMessages(tn, odd, 1))
	require.EqualValues(t, 4, backlog(odd))
	require.NoError(t, subs.Delete(tn, odd))

	require.NoError(t, subs.Delete(tn, "late"))
	require.Equal(t, http.StatusNotFound, adminStatus(subs.Delete(tn, "late")))
	list, err = subs.List(tn)
	require.NoError(t, err)
	require.Equal(t, []string{"early"}, list)

	// Creating a subscription on a topic that does not exist creates it.
	require.NoError(t, subs.Create(tname(t, "made-by-sub"), "s", utils.Earliest))
	require.Contains(t, s.Topics(), "persistent://public/default/made-by-sub")
}

func TestAdminSubscriptionWithConsumers(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	subs := adm.Subscriptions()
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "busy")
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "busy", SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	defer cons.Close()
	p := producerOf(t, c, "busy", false, pulsar.ProducerOptions{})
	sendAll(t, p, payloads(5, "m")...)
	for i, m := range receiveN(t, cons, 5) {
		require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload()))
		require.NoError(t, cons.Ack(m))
	}
	eventually(t, func(a *assertT) {
		n, err := s.Backlog("busy", "s")
		require.NoError(a, err)
		require.Zero(a, n)
	})

	// A reset disconnects the consumer, which resumes from the new position.
	require.NoError(t, subs.ResetCursorToMessageID(tn, "s", utils.Earliest))
	for i, m := range receiveN(t, cons, 5) {
		require.Equal(t, fmt.Sprintf("m-%d", i), string(m.Payload()), "redelivered from the start after the reset")
		require.NoError(t, cons.Ack(m))
	}

	require.Equal(t, http.StatusPreconditionFailed, adminStatus(subs.Delete(tn, "s")), "a subscription with consumers needs force")
	require.NoError(t, subs.ForceDelete(tn, "s"))
	// The consumer is disconnected; when it comes back it subscribes afresh
	// (at Latest, its initial position), as on Pulsar.
	eventually(t, func(a *assertT) {
		st, err := adm.Topics().GetStats(tn)
		require.NoError(a, err)
		require.Len(a, st.Subscriptions["s"].Consumers, 1)
		require.Zero(a, st.Subscriptions["s"].MsgBacklog)
	})
	_, err = p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte("after")})
	require.NoError(t, err)
	m := receiveN(t, cons, 1)[0]
	require.Equal(t, "after", string(m.Payload()))
}

func TestAdminSkipInsideBatch(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "skipbatch")
	require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
	p := producerOf(t, c, "skipbatch", true, pulsar.ProducerOptions{})
	ids := sendAll(t, p, payloads(10, "b")...)
	require.Equal(t, ids[0].EntryID(), ids[9].EntryID(), "one batch entry")

	require.NoError(t, adm.Subscriptions().SkipMessages(tn, "s", 3))
	n, err := s.Backlog("skipbatch", "s")
	require.NoError(t, err)
	require.EqualValues(t, 7, n, "skip counts messages, not entries")

	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "skipbatch", SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	defer cons.Close()
	for i, m := range receiveN(t, cons, 7) {
		require.Equal(t, fmt.Sprintf("b-%d", i+3), string(m.Payload()), "the skipped messages of the batch are not delivered")
	}
}

// --- messages ---

func TestAdminMessages(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	for _, codec := range []struct {
		name string
		c    pulsar.CompressionType
	}{{"NONE", pulsar.NoCompression}, {"LZ4", pulsar.LZ4}, {"ZLIB", pulsar.ZLib}, {"ZSTD", pulsar.ZSTD}} {
		for _, batched := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batched=%v", codec.name, batched), func(t *testing.T) {
				topic := fmt.Sprintf("msgs-%s-%v", strings.ToLower(codec.name), batched)
				tn := tname(t, topic)
				require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
				last, err := adm.Topics().GetLastMessageID(tn)
				require.NoError(t, err)
				require.EqualValues(t, -1, last.EntryID, "an empty topic's last entry is -1")

				p := producerOf(t, c, topic, batched, pulsar.ProducerOptions{CompressionType: codec.c, Name: "writer-" + topic})
				msgs := make([]*pulsar.ProducerMessage, 5)
				for i := range msgs {
					msgs[i] = &pulsar.ProducerMessage{
						Payload:    []byte(fmt.Sprintf("payload-%d-%s", i, strings.Repeat("z", 300))),
						Key:        fmt.Sprintf("key-%d", i),
						Properties: map[string]string{"i": strconv.Itoa(i), "codec": codec.name},
						EventTime:  time.UnixMilli(int64(1_700_000_000_000 + i)),
					}
				}
				ids := sendAll(t, p, msgs...)

				last, err = adm.Topics().GetLastMessageID(tn)
				require.NoError(t, err)
				require.Equal(t, ids[4].LedgerID(), last.LedgerID)
				require.Equal(t, ids[4].EntryID(), last.EntryID)

				got, err := adm.Subscriptions().GetMessagesByID(tn, ids[0].LedgerID(), ids[0].EntryID())
				require.NoError(t, err)
				if batched {
					require.Len(t, got, 5, "the whole batch")
					for i, m := range got {
						require.Equal(t, string(msgs[i].Payload), string(m.Payload))
						require.Equal(t, i, m.MessageID.BatchIndex)
					}
					// pulsaradmin merges the batch's properties into one map.
					require.Equal(t, codec.name, got[0].Properties["codec"])
				} else {
					require.Len(t, got, 1)
					require.Equal(t, string(msgs[0].Payload), string(got[0].Payload))
					require.Equal(t, "0", got[0].Properties["i"])
					require.Equal(t, codec.name, got[0].Properties["codec"])
					require.Equal(t, -1, got[0].MessageID.BatchIndex)
				}
				require.Equal(t, ids[0].LedgerID(), got[0].MessageID.LedgerID)
				require.Equal(t, ids[0].EntryID(), got[0].MessageID.EntryID)
				require.NotEmpty(t, got[0].Properties["publish-time"])

				peeked, err := adm.Subscriptions().PeekMessages(tn, "s", 5)
				require.NoError(t, err)
				require.Len(t, peeked, 5)
				for i, m := range peeked {
					require.Equal(t, string(msgs[i].Payload), string(m.Payload))
				}

				// The raw response carries the metadata headers.
				resp, err := http.Get(fmt.Sprintf("%s/admin/v2/persistent/public/default/%s/ledger/%d/entry/%d", s.AdminURL(), topic, ids[4].LedgerID(), ids[4].EntryID()))
				require.NoError(t, err)
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
				require.Equal(t, "writer-"+topic, resp.Header.Get("X-Pulsar-Producer-Name"))
				require.Equal(t, fmt.Sprintf("%d:%d", ids[4].LedgerID(), ids[4].EntryID()), resp.Header.Get("X-Pulsar-Message-Id"))
				if codec.c != pulsar.NoCompression {
					require.Equal(t, codec.name, resp.Header.Get("X-Pulsar-Compression"))
				}
				if !batched {
					require.Equal(t, "key-4", resp.Header.Get("X-Pulsar-Partition-Key"))
					require.Equal(t, "2023-11-14T22:13:20.004+0000", resp.Header.Get("X-Pulsar-Event-Time"))
				}

				stored, err := s.Messages(topic)
				require.NoError(t, err)
				require.Len(t, stored, 5)
				for i, m := range stored {
					require.Equal(t, msgs[i].Payload, m.Payload)
					require.Equal(t, msgs[i].Key, m.Key)
					require.Equal(t, msgs[i].Properties, m.Properties)
					require.Equal(t, msgs[i].EventTime.UnixMilli(), m.EventTime.UnixMilli())
					require.Equal(t, "writer-"+topic, m.ProducerName)
					require.EqualValues(t, i, m.SequenceID)
					require.Equal(t, ids[i].LedgerID(), int64(m.ID.Ledger))
					require.Equal(t, ids[i].EntryID(), int64(m.ID.Entry))
					if batched {
						require.Equal(t, ids[i].BatchIdx(), m.ID.BatchIndex)
					} else {
						require.EqualValues(t, -1, m.ID.BatchIndex, "not a batch")
					}
					require.Equal(t, "persistent://public/default/"+topic, m.Topic)
					require.False(t, m.PublishTime.IsZero())
				}
			})
		}
	}
}

func TestAdminMessagesPartitioned(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tn := tname(t, "pmsgs")
	require.NoError(t, adm.Topics().Create(tn, 2))
	c := clientOf(t, s.ServiceURL())
	p := producerOf(t, c, "pmsgs", false, pulsar.ProducerOptions{})
	msgs := payloads(10, "pm")
	for i, m := range msgs {
		m.Key = strconv.Itoa(i)
	}
	ids := sendAll(t, p, msgs...)

	stored, err := s.Messages("pmsgs")
	require.NoError(t, err)
	require.Len(t, stored, 10)
	require.True(t, sort.SliceIsSorted(stored, func(i, j int) bool { return stored[i].ID.Partition < stored[j].ID.Partition }), "partitions in order")

	// A message is found by id through the partitioned topic's name.
	got, err := adm.Subscriptions().GetMessagesByID(tn, ids[3].LedgerID(), ids[3].EntryID())
	require.NoError(t, err)
	require.Equal(t, "pm-3", string(got[0].Payload))
	_, err = adm.Topics().GetLastMessageID(tn)
	require.Equal(t, http.StatusMethodNotAllowed, adminStatus(err), "last id is per partition")
	part := tname(t, "pmsgs-partition-"+strconv.Itoa(int(ids[9].PartitionIdx())))
	last, err := adm.Topics().GetLastMessageID(part)
	require.NoError(t, err)
	require.Equal(t, ids[9].EntryID(), last.EntryID)
	require.Equal(t, int(ids[9].PartitionIdx()), last.PartitionIndex)
}

// --- inspection helpers ---

func TestInspect(t *testing.T) {
	s := minipulsar.RunT(t)
	c := clientOf(t, s.ServiceURL())
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "inspect", SubscriptionName: "s", Type: pulsar.Shared, EnableBatchIndexAcknowledgment: true})
	require.NoError(t, err)
	defer cons.Close()
	batch := producerOf(t, c, "inspect", true, pulsar.ProducerOptions{})
	single := producerOf(t, c, "inspect", false, pulsar.ProducerOptions{})
	bids := sendAll(t, batch, payloads(5, "b")...)
	sids := sendAll(t, single, payloads(2, "s")...)

	got := receiveN(t, cons, 7)
	acked := map[string]bool{"b-1": true, "b-3": true, "s-0": true}
	for _, m := range got {
		if acked[string(m.Payload())] {
			require.NoError(t, cons.Ack(m))
		}
	}
	ledger := uint64(bids[0].LedgerID())
	want := []minipulsar.MessageID{
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 0, Partition: -1},
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 2, Partition: -1},
		{Ledger: ledger, Entry: uint64(bids[0].EntryID()), BatchIndex: 4, Partition: -1},
		{Ledger: ledger, Entry: uint64(sids[1].EntryID()), BatchIndex: -1, Partition: -1},
	}
	eventually(t, func(a *assertT) {
		un, err := s.Unacked("inspect", "s")
		require.NoError(a, err)
		require.Equal(a, want, un)
		n, err := s.Backlog("inspect", "s")
		require.NoError(a, err)
		require.EqualValues(a, 4, n)
	})
	require.Equal(t, fmt.Sprintf("%d:%d:-1:2", ledger, bids[0].EntryID()), want[1].String())

	names, err := s.Subscriptions("inspect")
	require.NoError(t, err)
	require.Equal(t, []string{"s"}, names)
	require.Contains(t, s.Topics(), "persistent://public/default/inspect")
	stored, err := s.Messages("inspect")
	require.NoError(t, err)
	require.Len(t, stored, 7, "acknowledged messages stay stored")

	_, err = s.Backlog("nope", "s")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
	_, err = s.Backlog("inspect", "nope")
	require.ErrorIs(t, err, minipulsar.ErrSubNotFound)
	_, err = s.Unacked("inspect", "nope")
	require.ErrorIs(t, err, minipulsar.ErrSubNotFound)
	_, err = s.Messages("nope")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
	_, err = s.Subscriptions("nope")
	require.ErrorIs(t, err, minipulsar.ErrTopicNotFound)
}

// --- namespaces, lookup ---

func TestAdminNamespaces(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	tenants, err := adm.Tenants().List()
	require.NoError(t, err)
	require.Contains(t, tenants, "public")
	require.NoError(t, adm.Namespaces().CreateNamespace("public/extra"))
	err = adm.Namespaces().CreateNamespace("public/extra")
	require.Equal(t, http.StatusConflict, adminStatus(err))
	nss, err := adm.Namespaces().GetNamespaces("public")
	require.NoError(t, err)
	require.Contains(t, nss, "public/default")
	require.Contains(t, nss, "public/extra")

	getDedup := func() bool {
		t.Helper()
		resp, err := http.Get(s.AdminURL() + "/admin/v2/namespaces/public/default/deduplication")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var on bool
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&on))
		return on
	}
	require.False(t, getDedup(), "off by default, as on Pulsar")
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", true))
	require.True(t, getDedup())
	require.NoError(t, adm.Topics().Create(tname(t, "dd"), 0))
	st, err := adm.Topics().GetStats(tname(t, "dd"))
	require.NoError(t, err)
	require.Equal(t, "Enabled", st.DeDuplicationStatus)
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", false))
	require.False(t, getDedup())

	// Deleting a namespace: refused while it holds topics, unless forced.
	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/extra", true))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/a"), 0))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/b"), 2))
	require.Equal(t, http.StatusConflict, adminStatus(adm.Namespaces().DeleteNamespace("public/extra")))
	status, _ := rawCall(t, http.MethodDelete, s.AdminURL()+"/admin/v2/namespaces/public/extra?force=true", "")
	require.Equal(t, http.StatusNoContent, status)
	require.Empty(t, filter(s.Topics(), "public/extra"))
	nss, err = adm.Namespaces().GetNamespaces("public")
	require.NoError(t, err)
	require.NotContains(t, nss, "public/extra")
	require.Equal(t, http.StatusNotFound, adminStatus(adm.Namespaces().DeleteNamespace("public/extra")))
	require.NoError(t, adm.Namespaces().CreateNamespace("public/extra"))
	require.NoError(t, adm.Topics().Create(tname(t, "persistent://public/extra/c"), 0))
	st, err = adm.Topics().GetStats(tname(t, "persistent://public/extra/c"))
	require.NoError(t, err)
	require.Equal(t, "Disabled", st.DeDuplicationStatus, "a deleted namespace's settings go with it")
	require.NoError(t, adm.Topics().Delete(tname(t, "persistent://public/extra/c"), false, true))
	require.NoError(t, adm.Namespaces().DeleteNamespace("public/extra"))
}

func TestHTTPLookup(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	require.NoError(t, adm.Topics().Create(tname(t, "hparts"), 2))
	c := clientOf(t, s.AdminURL()) // http:// service URL: lookups over HTTP

	for _, topic := range []string{"hplain", "hparts"} {
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
		require.NoError(t, err)
		p := producerOf(t, c, topic, false, pulsar.ProducerOptions{})
		sendAll(t, p, payloads(4, topic)...)
		seen := map[string]bool{}
		for _, m := range receiveN(t, cons, 4) {
			seen[string(m.Payload())] = true
		}
		require.Len(t, seen, 4)
		cons.Close()
	}

	lk, err := adm.Topics().Lookup(tname(t, "hplain"))
	require.NoError(t, err)
	require.Equal(t, s.ServiceURL(), lk.BrokerURL)

	s.RefuseLookups(true)
	for _, path := range []string{"/lookup/v2/topic/persistent/public/default/hplain", "/admin/v2/persistent/public/default/hplain/partitions?checkAllowAutoCreation=true"} {
		status, reason := rawCall(t, http.MethodGet, s.AdminURL()+path, "")
		require.Equal(t, http.StatusServiceUnavailable, status, path)
		require.NotEmpty(t, reason)
	}
	md, err := adm.Topics().GetMetadata(tname(t, "hparts"))
	require.NoError(t, err, "admin metadata calls are not lookups")
	require.Equal(t, 2, md.Partitions)
	s.RefuseLookups(false)
	status, _ := rawCall(t, http.MethodGet, s.AdminURL()+"/lookup/v2/topic/persistent/public/default/hplain", "")
	require.Equal(t, http.StatusOK, status)
}

// rawCall makes a request and returns the status and, for an error, the
// reason of its JSON body (failing the test when an error is not JSON).
func rawCall(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode < 400 {
		return resp.StatusCode, ""
	}
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s: %s", method, url, b)
	var e struct {
		Reason string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(b, &e), "%s %s: %s", method, url, b)
	require.NotEmpty(t, e.Reason, "%s %s", method, url)
	if resp.StatusCode == http.StatusMethodNotAllowed {
		require.NotEmpty(t, resp.Header.Get("Allow"), "405 names the allowed methods")
	}
	return resp.StatusCode, e.Reason
}

func TestAdminErrors(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "t")
	require.NoError(t, adm.Subscriptions().Create(tn, "s", utils.Earliest))
	ids := sendAll(t, producerOf(t, c, "t", false, pulsar.ProducerOptions{}), payloads(1, "x")...)
	ledger := ids[0].LedgerID()
	base := s.AdminURL() + "/admin/v2/persistent/public/default"

	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/admin/v2/nope", "", 404},
		{"GET", "/nothing/at/all", "", 404},
		{"DELETE", "/t/stats", "", 405},
		{"PATCH", "/t", "", 405},
		{"GET", "/missing/stats", "", 404},
		{"GET", "/missing/internalStats", "", 404},
		{"GET", "/missing/subscriptions", "", 404},
		{"GET", "/missing/lastMessageId", "", 404},
		{"POST", "/t/subscription/s/skip/-1", "", 400},
		{"POST", "/t/subscription/s/skip/many", "", 400},
		{"POST", "/t/subscription/nosub/skip/1", "", 404},
		{"POST", "/missing/subscription/s/skip/1", "", 404},
		{"POST", "/t/subscription/nosub/skip_all", "", 404},
		{"POST", "/t/subscription/s/resetcursor", "{bad json", 400},
		{"POST", "/t/subscription/s/resetcursor", "", 400},
		{"POST", "/t/subscription/s/resetcursor", `{"ledgerId":1}`, 400},
		{"POST", "/t/subscription/s/resetcursor/yesterday", "", 400},
		{"POST", "/t/subscription/nosub/resetcursor/0", "", 404},
		{"PUT", "/t/subscription/s2", `{"ledgerId":"x","entryId":0}`, 400},
		{"PUT", "/t/subscription/s2?messageId=middle", "", 400},
		{"PUT", "/t/subscription/s", "", 409},
		{"DELETE", "/t/subscription/nosub", "", 404},
		{"GET", "/t/ledger/abc/entry/0", "", 400},
		{"GET", "/t/ledger/-1/entry/0", "", 400},
		{"GET", "/t/ledger/1/entry/-5", "", 400},
		{"GET", fmt.Sprintf("/t/ledger/%d/entry/0", ledger+1000), "", 404},
		{"GET", fmt.Sprintf("/t/ledger/%d/entry/99", ledger), "", 404},
		{"GET", "/t/subscription/s/position/0", "", 400},
		{"GET", "/t/subscription/s/position/x", "", 400},
		{"GET", "/t/subscription/s/position/99", "", 404},
		{"GET", "/t/subscription/nosub/position/1", "", 404},
		{"PUT", "/p/partitions", "0", 406},
		{"PUT", "/p/partitions", `{"partitions":-3}`, 406},
		{"PUT", "/p/partitions", "three", 400},
		{"PUT", "/p/partitions", "", 400},
		{"PUT", "/p/partitions", `{"partitions":`, 400},
		{"PUT", "/p-partition-1/partitions", "2", 412},
		{"PUT", "/t/partitions", "2", 409},
		{"PUT", "/t", "", 409},
		{"DELETE", "/missing", "", 404},
		{"DELETE", "/t/partitions", "", 404},
		{"POST", "/missing/partitions", "3", 404},
		{"GET", "/missing/partitioned-stats", "", 404},
		{"GET", "/t/messageid/notatime", "", 400},
		{"GET", "/t/messageid/99999999999999", "", 404},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			url := base + tc.path
			if strings.HasPrefix(tc.path, "/admin") || strings.HasPrefix(tc.path, "/nothing") {
				url = s.AdminURL() + tc.path
			}
			status, _ := rawCall(t, tc.method, url, tc.body)
			require.Equal(t, tc.want, status)
		})
	}
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/admin/v2/bogus/public/default/t/stats", "", 404},
		{"GET", "/admin/v2/bogus/public/default", "", 404},
		{"GET", "/lookup/v2/topic/bogus/public/default/t", "", 404},
		{"POST", "/admin/v2/namespaces/public/default/deduplication", "maybe", 400},
		{"GET", "/admin/v2/schemas/public/default/t/schema", "", 404},
		{"PUT", "/admin/v2/namespaces/public/default", "", 409},
		{"GET", "/admin/v2/namespaces/nosuchtenant", "", 404},
		{"GET", "/admin/v2/namespaces/public/default/topics?mode=SOME", "", 400},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, _ := rawCall(t, tc.method, s.AdminURL()+tc.path, tc.body)
			require.Equal(t, tc.want, status)
		})
	}

	// Nothing above changed the subscription.
	n, err := s.Backlog("t", "s")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestInspectChunked(t *testing.T) {
	s := minipulsar.RunT(t)
	c := clientOf(t, s.ServiceURL())
	p := producerOf(t, c, "chunked", false, pulsar.ProducerOptions{EnableChunking: true, ChunkMaxMessageSize: 100, CompressionType: pulsar.LZ4})
	big := make([]byte, 1000) // incompressible, so it takes 10 chunks
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	small := []byte("small")
	ids := sendAll(t, p, &pulsar.ProducerMessage{Payload: big, Key: "k"}, &pulsar.ProducerMessage{Payload: small})

	stored, err := s.Messages("chunked")
	require.NoError(t, err)
	require.Len(t, stored, 2, "the chunks are joined")
	require.Equal(t, big, stored[0].Payload)
	require.Equal(t, "k", stored[0].Key)
	require.Equal(t, ids[0].EntryID(), int64(stored[0].ID.Entry), "a chunked message has its last chunk's id")
	require.Equal(t, small, stored[1].Payload)
	require.Equal(t, ids[1].EntryID(), int64(stored[1].ID.Entry))
	require.GreaterOrEqual(t, stored[0].ID.Entry, uint64(9), "stored as ten chunks or more")
}

func TestAdminTopicDeduplication(t *testing.T) {
	s := minipulsar.RunT(t)
	adm := adminOf(t, s)
	c := clientOf(t, s.ServiceURL())
	tn := tname(t, "dedup")
	require.NoError(t, adm.Topics().Create(tn, 0))
	policy := func(applied bool) string {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("%s/admin/v2/persistent/public/default/dedup/deduplicationEnabled?applied=%v", s.AdminURL(), applied))
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Equal(t, "null", policy(false), "no topic policy yet")
	require.Equal(t, "false", policy(true))
	on, err := adm.Topics().GetDeduplicationStatus(tn)
	require.NoError(t, err)
	require.False(t, on)

	require.NoError(t, adm.Topics().SetDeduplicationStatus(tn, true))
	on, err = adm.Topics().GetDeduplicationStatus(tn)
	require.NoError(t, err)
	require.True(t, on)
	st, err := adm.Topics().GetStats(tn)
	require.NoError(t, err)
	require.Equal(t, "Enabled", st.DeDuplicationStatus)

	// In force: a re-sent sequence id is dropped.
	seq := func(i int64) *int64 { return &i }
	p := producerOf(t, c, "dedup", false, pulsar.ProducerOptions{Name: "dd"})
	for _, i := range []int64{0, 1, 1, 0, 2} {
		_, err := p.Send(ctxOf(t), &pulsar.ProducerMessage{Payload: []byte(strconv.FormatInt(i, 10)), SequenceID: seq(i)})
		require.NoError(t, err)
	}
	stored, err := s.Messages("dedup")
	require.NoError(t, err)
	require.Len(t, stored, 3)

	require.NoError(t, adm.Namespaces().SetDeduplicationStatus("public/default", true))
	require.NoError(t, adm.Topics().RemoveDeduplicationStatus(tn))
	require.Equal(t, "null", policy(false))
	require.Equal(t, "true", policy(true), "the namespace policy applies once the topic's is removed")

	status, _ := rawCall(t, http.MethodPost, s.AdminURL()+"/admin/v2/persistent/public/default/dedup/deduplicationEnabled", "yes")
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, http.StatusNotFound, adminStatus(adm.Topics().SetDeduplicationStatus(tname(t, "nope"), true)))
	_, err = adm.Topics().GetDeduplicationStatus(tname(t, "nope"))
	require.Equal(t, http.StatusNotFound, adminStatus(err))
}
