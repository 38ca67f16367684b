package consume

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/apache/pulsar-client-go/pulsaradmin"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/admin/config"
	"github.com/apache/pulsar-client-go/pulsaradmin/pkg/utils"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/wire"
	"github.com/stretchr/testify/require"
)

// tagsOf returns the tags of the messages in sent with the given uids.
func countTags(sent []testMsg, uids []string) map[string]int64 {
	byUID := map[string]testMsg{}
	for _, m := range sent {
		byUID[m.uid] = m
	}
	out := map[string]int64{}
	for _, u := range uids {
		for _, t := range byUID[u].tags {
			out[t]++
		}
	}
	return out
}

func tagPending(b *TagBacklog) map[string]int64 {
	out := map[string]int64{}
	for _, t := range b.Tags {
		if t.Pending > 0 {
			out[t.Tag] = t.Pending
		}
	}
	return out
}

func tagRow(b *TagBacklog, tag string) TagCounts {
	for _, t := range b.Tags {
		if t.Tag == tag {
			return t
		}
	}
	return TagCounts{Tag: tag}
}

// Per-tag backlog with real traffic: 300 messages in batches, 200 of them
// matching the filter, then part of them received and part of those
// acknowledged. The broker scan plus the delivery states give the exact
// per-tag numbers at every step, and the replica's report says how many are
// in flight.
func TestTagBacklogExact(t *testing.T) {
	e := newEnv(t)
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: e.broker.AdminURL()})
	require.NoError(t, err)
	a := e.node(func(o *Options) {
		o.Backlog = AdminBacklog(admin)
		o.Peeker = testPeeker(t, e.broker.AdminURL())
		o.TagBacklog.Cache = time.Nanosecond
		o.Stats.rateSlot = 2 * time.Second // a 12 s window holds the whole test
	})
	ref := newRef("backlog")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_A || PAY_B", InitialPosition: PositionEarliest})

	var sent []testMsg
	for i := range 300 {
		switch i % 3 {
		case 0:
			sent = append(sent, newMsg("PAY_A"))
		case 1:
			sent = append(sent, newMsg("PAY_A", "PAY_B"))
		default:
			sent = append(sent, newMsg("PAY_C"))
		}
	}
	produce(t, e.client, ref.TopicName(), sent)

	var b TagBacklog
	code, eb := a.do(http.MethodGet, subPath(ref)+"/backlog", nil, &b)
	require.Equal(t, http.StatusOK, code, eb)
	require.True(t, b.Exact, b.Error)
	require.Equal(t, "end", b.StoppedBy)
	require.EqualValues(t, 300, b.Scanned.Messages)
	require.Less(t, b.Scanned.Entries, int64(300), "batches are one entry each")
	require.EqualValues(t, 100, b.Scanned.NotMatching)
	require.EqualValues(t, 200, b.Pending)
	require.Equal(t, map[string]int64{"PAY_A": 200, "PAY_B": 100}, tagPending(&b))
	require.NotNil(t, b.Broker)
	require.EqualValues(t, 300, *b.Broker)
	require.Nil(t, b.Estimated)
	require.Zero(t, b.Held)

	// Receive 50, acknowledge 30 of them.
	got := a.receiveUntil(ref, 50, 10*time.Second)
	require.GreaterOrEqual(t, len(got), 50)
	if len(got) > 50 {
		a.nack(ref, "", got[50:]...) // back at once; still owed
		got = got[:50]
	}
	acked, open := got[:30], got[30:]
	require.Equal(t, AckResponse{Acked: 30}, a.ack(ref, acked...))
	ackedTags := countTags(sent, uids(acked))
	openTags := countTags(sent, uids(open))

	require.Eventually(t, func() bool {
		bb, err := a.svc.TagBacklog(context.Background(), ref)
		require.NoError(t, err)
		b = *bb
		return b.Held.InFlight == 20 && b.Replicas == 1
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, b.Exact, b.Error)
	require.EqualValues(t, 170, b.Pending, "200 matching, 30 acknowledged")
	require.Equal(t, map[string]int64{"PAY_A": 200 - ackedTags["PAY_A"], "PAY_B": 100 - ackedTags["PAY_B"]}, tagPending(&b))
	require.EqualValues(t, openTags["PAY_A"], tagRow(&b, "PAY_A").Held.InFlight)
	require.EqualValues(t, openTags["PAY_B"], tagRow(&b, "PAY_B").Held.InFlight)
	require.LessOrEqual(t, b.Held.Ready+b.Held.InFlight+b.Held.Other, b.Pending, "what replicas hold is part of the backlog")
	require.Zero(t, tagRow(&b, "PAY_C").Pending)

	// Everything else, then nothing is owed.
	rest := a.receiveUntil(ref, 150, 20*time.Second)
	require.Len(t, rest, 150)
	a.ack(ref, open...)
	a.ack(ref, rest...)
	require.Eventually(t, func() bool {
		bb, err := a.svc.TagBacklog(context.Background(), ref)
		require.NoError(t, err)
		b = *bb
		return b.Held == HeldCounts{}
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, b.Exact)
	require.Zero(t, b.Pending)
	require.Empty(t, tagPending(&b))

	// Rates: 200 acks, 100 of them with PAY_B, flushed within the window.
	require.Eventually(t, func() bool {
		st := a.stats(ref)
		return st.Rates.Acked*st.RateWindowSeconds > 199.5
	}, 20*time.Second, 100*time.Millisecond)
	st := a.stats(ref)
	require.InDelta(t, 200, st.Rates.Acked*st.RateWindowSeconds, 0.5)
	require.InDelta(t, 100, st.TagRates["PAY_B"].Acked*st.RateWindowSeconds, 0.5)
	require.InDelta(t, 100, st.TagRates["PAY_C"].Filtered*st.RateWindowSeconds, 0.5)
}

// A scan stopped by a limit says so, and scales its sample to the
// broker's backlog.
func TestTagBacklogSample(t *testing.T) {
	e := newEnv(t)
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: e.broker.AdminURL()})
	require.NoError(t, err)
	a := e.node(func(o *Options) {
		o.Backlog = AdminBacklog(admin)
		o.Peeker = testPeeker(t, e.broker.AdminURL())
		o.TagBacklog.ScanEntries = 2
	})
	ref := newRef("sample")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_A", InitialPosition: PositionEarliest})
	var sent []testMsg
	for i := range 1000 {
		if i%4 == 0 {
			sent = append(sent, newMsg("PAY_A"))
		} else {
			sent = append(sent, newMsg("PAY_Z"))
		}
	}
	produceEach(t, e.client, ref.TopicName(), sent)
	b, err := a.svc.TagBacklog(context.Background(), ref)
	require.NoError(t, err)
	require.False(t, b.Exact)
	require.Equal(t, "entries", b.StoppedBy)
	require.EqualValues(t, 2, b.Scanned.Entries)
	require.Less(t, b.Scanned.Messages, int64(1000))
	require.NotNil(t, b.Broker)
	require.EqualValues(t, 1000, *b.Broker)
	// The head is in produce order: every 4th message matches.
	want := (b.Scanned.Messages + 3) / 4
	require.Equal(t, want, b.Pending)
	require.NotNil(t, b.Estimated)
	require.Equal(t, b.Pending*1000/b.Scanned.Messages, *b.Estimated)
	require.Equal(t, *b.Estimated, *tagRow(b, "PAY_A").Estimated)
}

// The Prometheus gauges: the periodic scan exports the per-tag backlog,
// the largest tags under their own label and the rest summed as _other;
// the held gauges say what this replica holds.
func TestTagBacklogMetrics(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	a := e.node(func(o *Options) {
		o.Peeker = testPeeker(t, e.broker.AdminURL())
		o.Registerer = reg
		o.Stats.MaxTagLabels = 2
		o.TagBacklog.Interval = 100 * time.Millisecond
		o.TagBacklog.Cache = time.Nanosecond
	})
	ref := newRef("metrics")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_A || PAY_B || PAY_C", InitialPosition: PositionEarliest})
	var sent []testMsg
	for i := range 60 {
		sent = append(sent, newMsg([]string{"PAY_A", "PAY_A", "PAY_A", "PAY_B", "PAY_B", "PAY_C"}[i%6]))
	}
	produce(t, e.client, ref.TopicName(), sent)
	path := ref.Path()
	read := func(g prometheus.Gauge) float64 {
		var m dto.Metric
		require.NoError(t, g.Write(&m))
		return m.GetGauge().GetValue()
	}
	gauge := func(tag string) float64 { return read(a.svc.metrics.tagBacklog.vec.WithLabelValues(path, tag)) }
	require.Eventually(t, func() bool { return gauge("PAY_A") == 30 }, 10*time.Second, 50*time.Millisecond)
	require.EqualValues(t, 20, gauge("PAY_B"))
	require.EqualValues(t, 10, gauge(TagOther), "PAY_C is past the label limit")
	require.EqualValues(t, 1, read(a.svc.metrics.backlogScan.vec.WithLabelValues(path, "exact")))

	got := a.receiveUntil(ref, 6, 10*time.Second)[:6]
	want := countTags(sent, uids(got))
	require.Eventually(t, func() bool {
		return read(a.svc.metrics.tagHeld.vec.WithLabelValues(path, "PAY_A", "inflight")) == float64(want["PAY_A"])
	}, 10*time.Second, 50*time.Millisecond)
	names := []string{}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	require.True(t, slices.Contains(names, "psc_consume_tag_held_messages"), names)
	require.True(t, slices.Contains(names, "psc_consume_tag_backlog_messages"), names)
}

// Batches as Pulsar's admin API returns them: each message keeps its own
// properties (pulsaradmin's PeekMessages does not).
func TestParsePeekedBatch(t *testing.T) {
	e := newEnv(t)
	ref := newRef("peek")
	n := e.node()
	n.put(ref, SubscriptionSpec{InitialPosition: PositionEarliest})
	sent := []testMsg{newMsg("A"), newMsg("B", "C"), newMsg()}
	produce(t, e.client, ref.TopicName(), sent)
	p := testPeeker(t, e.broker.AdminURL())
	var got []PeekedMessage
	for pos := 1; ; pos++ {
		msgs, ok, err := p.Peek(context.Background(), ref.TopicName(), ref.Subscription, pos)
		require.NoError(t, err)
		if !ok {
			break
		}
		got = append(got, msgs...)
	}
	require.Len(t, got, 3)
	for i, m := range got {
		require.Equal(t, sent[i].uid, m.Properties[wire.PropUID])
		require.Equal(t, sent[i].pulsarProperties()[wire.PropTags], m.Properties[wire.PropTags])
		require.False(t, m.PublishTime.IsZero())
	}
	parts, err := p.Partitions(context.Background(), ref.TopicName())
	require.NoError(t, err)
	require.Zero(t, parts)
}

// Messages from a native producer without a uid, unbatched: their
// delivery state is keyed by position, and the scan finds it the same way.
func TestTagBacklogWithoutUIDs(t *testing.T) {
	e := newEnv(t)
	a := e.node(func(o *Options) {
		o.Peeker = testPeeker(t, e.broker.AdminURL())
		o.TagBacklog.Cache = time.Nanosecond
	})
	ref := newRef("native")
	a.put(ref, SubscriptionSpec{TagFilter: "PAY_N", InitialPosition: PositionEarliest})
	p, err := e.client.CreateProducer(pulsar.ProducerOptions{Topic: ref.TopicName(), DisableBatching: true})
	require.NoError(t, err)
	defer p.Close()
	for i := range 5 {
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte{byte(i)}, Properties: map[string]string{wire.PropTags: "PAY_N"}})
		require.NoError(t, err)
	}
	got := a.receiveUntil(ref, 2, 10*time.Second)
	require.GreaterOrEqual(t, len(got), 2)
	if len(got) > 2 {
		a.nack(ref, "", got[2:]...)
	}
	require.Empty(t, got[0].UID)
	// The state id the scan derives from a peeked message is the one the
	// engine keyed the delivery by.
	peeker := testPeeker(t, e.broker.AdminURL())
	want := map[string]bool{}
	for pos := 1; pos <= 5; pos++ {
		msgs, ok, err := peeker.Peek(context.Background(), ref.TopicName(), ref.Subscription, pos)
		require.NoError(t, err)
		require.True(t, ok)
		m := msgs[0]
		want[stateIDFor("", 0, copyKey{partition: m.Partition, ledger: m.Ledger, entry: m.Entry, batch: m.BatchIdx}, "")] = true
	}
	for _, m := range got[:2] {
		id, err := a.svc.signer.Decode(m.AckID)
		require.NoError(t, err)
		require.True(t, want[id.stateID()], "%s not among %v", id.stateID(), want)
	}
	require.Equal(t, AckResponse{Acked: 2}, a.ack(ref, got[:2]...))
	b, err := a.svc.TagBacklog(context.Background(), ref)
	require.NoError(t, err)
	require.True(t, b.Exact, b.Error)
	require.LessOrEqual(t, b.Scanned.Messages, int64(5))
	require.EqualValues(t, b.Scanned.Messages-3, b.Scanned.Acknowledged, "acknowledged in Redis, the broker not told yet")
	require.EqualValues(t, 3, b.Pending)
	require.Equal(t, map[string]int64{"PAY_N": 3}, tagPending(b))
}

// A peeked entry is outside input: any body and batch header either parses
// into as many messages as the header says, or fails; it never panics.
func FuzzParsePeeked(f *testing.F) {
	one := []byte{0, 0, 0, 4, 0x18, 0x02, 0x0a, 0x00, 'h', 'i'}
	f.Add("1", one)
	f.Add("2", append(append([]byte{}, one...), one...))
	f.Add("", []byte("plain payload"))
	f.Add("3", []byte{0, 0, 0, 200})
	f.Add("-1", []byte{})
	f.Fuzz(func(t *testing.T, batch string, body []byte) {
		h := http.Header{}
		h.Set("X-Pulsar-Message-ID", "7:3")
		if batch != "" {
			h.Set("X-Pulsar-num-batch-message", batch)
		}
		msgs, err := parsePeeked("persistent://t/n/x", h, body)
		if err != nil {
			return
		}
		if batch == "" {
			require.Len(t, msgs, 1)
			return
		}
		n, err := strconv.Atoi(batch)
		require.NoError(t, err, "a batch header that does not parse must fail")
		require.Len(t, msgs, n)
		for i, m := range msgs {
			require.EqualValues(t, i, m.BatchIdx)
			require.EqualValues(t, 7, m.Ledger)
		}
	})
}

// movingPeeker removes the head of the backlog at the broker (skip 1, as an
// ack reaching the broker does) just before the second peek of each of the
// first moves reads.
type movingPeeker struct {
	Peeker
	t            *testing.T
	admin        pulsaradmin.Client
	mu           sync.Mutex
	reads, moves int
}

func (p *movingPeeker) Peek(ctx context.Context, topic, subscription string, pos int) ([]PeekedMessage, bool, error) {
	if pos == 2 {
		p.mu.Lock()
		if p.reads < p.moves {
			p.reads++
			tn, err := utils.GetTopicName(topic)
			require.NoError(p.t, err)
			require.NoError(p.t, p.admin.Subscriptions().SkipMessages(*tn, subscription, 1))
		}
		p.mu.Unlock()
	}
	return p.Peeker.Peek(ctx, topic, subscription, pos)
}

// movingScan scans a backlog of messages tagged T1..Tn while the peeker
// moves the cursor during the first moves reads.
func movingScan(t *testing.T, n, moves int) (*TagBacklog, *movingPeeker) {
	e := newEnv(t)
	admin, err := pulsaradmin.NewClient(&config.Config{WebServiceURL: e.broker.AdminURL()})
	require.NoError(t, err)
	p := &movingPeeker{Peeker: testPeeker(t, e.broker.AdminURL()), t: t, admin: admin, moves: moves}
	a := e.node(func(o *Options) {
		o.Peeker = p
		o.TagBacklog.Cache = time.Nanosecond
	})
	ref := newRef("moving")
	var sent []testMsg
	var terms []string
	for i := 1; i <= n; i++ {
		sent = append(sent, newMsg("T"+strconv.Itoa(i)))
		terms = append(terms, "T"+strconv.Itoa(i))
	}
	a.put(ref, SubscriptionSpec{TagFilter: strings.Join(terms, " || "), InitialPosition: PositionEarliest})
	produceEach(t, e.client, ref.TopicName(), sent)
	b, err := a.svc.TagBacklog(context.Background(), ref)
	require.NoError(t, err)
	return b, p
}

// An ack reaching the broker during the scan shifts every later position by
// one: without a second read the scan skips T3 and counts T1, which the
// broker no longer holds.
func TestTagBacklogCursorMovesDuringScan(t *testing.T) {
	b, p := movingScan(t, 5, 1)
	require.Equal(t, 1, p.reads)
	require.True(t, b.Exact, "%+v", b)
	require.Equal(t, "end", b.StoppedBy)
	require.EqualValues(t, 4, b.Scanned.Messages)
	require.Equal(t, map[string]int64{"T2": 1, "T3": 1, "T4": 1, "T5": 1}, tagPending(b))
}

// A cursor that moves during every read gives an answer that says so.
func TestTagBacklogCursorKeepsMoving(t *testing.T) {
	b, p := movingScan(t, 6, 100)
	require.Equal(t, backlogScanAttempts, p.reads)
	require.False(t, b.Exact)
	require.Equal(t, "moving", b.StoppedBy)
	// The counts are the last read's (T2, then T4..T6 after the skip), not
	// the sum of both.
	require.EqualValues(t, 4, b.Scanned.Messages)
	require.Equal(t, map[string]int64{"T2": 1, "T4": 1, "T5": 1, "T6": 1}, tagPending(b))
}

func FuzzCursorToken(f *testing.F) {
	f.Add([]byte(`{"cursors":{"s":{"markDeletePosition":"3:4","individuallyDeletedMessages":"[(3:5..3:7]]"}}}`), "s")
	f.Add([]byte(`{"cursors":{}}`), "s")
	f.Add([]byte(`{"cursors":{"s":{"markDeletePosition":7}}}`), "s")
	f.Add([]byte(`[`), "")
	f.Fuzz(func(t *testing.T, body []byte, sub string) {
		tok, err := cursorToken(body, sub)
		if err != nil {
			require.Empty(t, tok)
			return
		}
		again, err := cursorToken(body, sub)
		require.NoError(t, err)
		require.Equal(t, tok, again)
	})
}

// The token changes when an ack removes an entry, and not otherwise.
func TestAdminPeekerCursor(t *testing.T) {
	e := newEnv(t)
	ref := newRef("cursor")
	n := e.node()
	n.put(ref, SubscriptionSpec{InitialPosition: PositionEarliest})
	ids := produceEach(t, e.client, ref.TopicName(), []testMsg{newMsg("A"), newMsg("B"), newMsg("C")})
	p := testPeeker(t, e.broker.AdminURL())
	ctx := context.Background()
	tok := func() string {
		s, err := p.Cursor(ctx, ref.TopicName(), ref.Subscription)
		require.NoError(t, err)
		return s
	}
	first := tok()
	require.NotEmpty(t, first)
	produceEach(t, e.client, ref.TopicName(), []testMsg{newMsg("D")})
	require.Equal(t, first, tok(), "a new message does not move the cursor")

	c, err := e.client.Subscribe(pulsar.ConsumerOptions{Topic: ref.TopicName(), SubscriptionName: ref.Subscription, Type: pulsar.Shared})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.AckID(ids[1]))
	require.Eventually(t, func() bool { return tok() != first }, 5*time.Second, 10*time.Millisecond)

	missing, err := p.Cursor(ctx, ref.TopicName(), "nobody")
	require.NoError(t, err)
	require.Empty(t, missing)
}

// testPeeker is AdminPeeker at url, without a token.
func testPeeker(t *testing.T, url string) Peeker {
	t.Helper()
	p, err := AdminPeeker(url, "")
	require.NoError(t, err)
	return p
}
