package minipulsar

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"
)

// cachedEntries counts a topic's entries whose bytes are in memory and
// checks them against the topic's and the server's counts.
func cachedEntries(t *testing.T, s *Server, name string) (n int, bytes int64) {
	t.Helper()
	ts, err := s.physicalTopics(name)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	tp := ts[0]
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for i := range tp.entries {
		if e := &tp.entries[i]; e.data != nil {
			n++
			bytes += int64(e.size)
		}
	}
	require.Equal(t, bytes, tp.cachedBytes(), "no entry below cachedFrom holds its bytes")
	return n, bytes
}

func payload(i int) []byte {
	return append(fmt.Appendf(nil, "m-%04d-", i), bytes.Repeat([]byte{'x'}, 1000)...)
}

func sendN(t *testing.T, c pulsar.Client, topic string, from, n int) {
	t.Helper()
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	require.NoError(t, err)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < from+n; i++ {
		p.SendAsync(ctx, &pulsar.ProducerMessage{Payload: payload(i), Key: fmt.Sprint(i % 7)}, func(_ pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			require.NoError(t, err)
		})
	}
	require.NoError(t, p.FlushWithCtx(ctx))
}

// TestEntryCacheTopicWithoutSubscriptions: with a data directory, a topic
// nobody subscribes to keeps none of its entries' bytes in memory, and a
// subscription created later still reads every message, from the segments.
func TestEntryCacheTopicWithoutSubscriptions(t *testing.T) {
	s := startPersist(t, Options{DataDir: t.TempDir()})
	c := persistClient(t, s.ServiceURL())
	const topic = "cache-no-subs"
	sendN(t, c, topic, 0, 300)

	n, b := cachedEntries(t, s, topic)
	require.Zero(t, n, "entries read by every subscription (there is none) are dropped")
	require.Zero(t, b)
	require.Zero(t, s.cacheBytes.Load())

	got := readAll(t, c, topic, 300)
	for i := range 300 {
		require.Contains(t, got, string(payload(i)))
	}

	// The admin API shows an evicted entry's bytes too.
	var ledger, entry, batch int64
	_, err := fmt.Sscanf(got[string(payload(5))], "%d:%d:%d", &ledger, &entry, &batch)
	require.NoError(t, err)
	resp, err := http.Get(fmt.Sprintf("%s/admin/v2/persistent/public/default/%s/ledger/%d/entry/%d", s.AdminURL(), topic, ledger, entry))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.Equal(t, payload(5), body)

	msgs, err := s.Messages(topic)
	require.NoError(t, err)
	require.Len(t, msgs, 300)
	require.Equal(t, payload(299), msgs[299].Payload)
}

// TestEntryCacheBound: a subscription that does not read keeps entries
// cached only up to EntryCacheSize; past it the oldest are dropped, and the
// consumer, redeliveries included, still gets every message once it reads.
func TestEntryCacheBound(t *testing.T) {
	const limit = 40 << 10 // about 40 entries of ~1 KiB
	s := startPersist(t, Options{DataDir: t.TempDir(), EntryCacheSize: limit})
	c := persistClient(t, s.ServiceURL())
	const topic = "cache-bound"
	cons, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "slow", Type: pulsar.Shared, ReceiverQueueSize: 1,
		NackRedeliveryDelay: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	defer cons.Close()
	sendN(t, c, topic, 0, 400)

	n, b := cachedEntries(t, s, topic)
	require.LessOrEqual(t, b, int64(limit), "cached bytes within the bound")
	require.Positive(t, n, "the entries the subscription has yet to read stay cached up to the bound")
	require.Equal(t, b, s.cacheBytes.Load())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	seen := map[string]int{}
	nacked := 0
	for len(seen) < 400 {
		m, err := cons.Receive(ctx)
		require.NoError(t, err, "after %d messages", len(seen))
		seen[string(m.Payload())]++
		if seen[string(m.Payload())] == 1 && nacked < 20 && len(seen)%17 == 0 {
			nacked++
			cons.Nack(m) // redelivered from the segment: it was dropped long ago
			delete(seen, string(m.Payload()))
			continue
		}
		require.NoError(t, cons.Ack(m))
	}
	for i := range 400 {
		require.Equal(t, 1, seen[string(payload(i))], "message %d", i)
	}
	require.Equal(t, 20, nacked)
}

// startToRestart starts a broker on a new data directory that the test
// closes itself (to start another on the same directory), and a client.
func startToRestart(t *testing.T) (string, *Server, pulsar.Client) {
	dir := t.TempDir()
	s := NewServer(Options{DataDir: dir})
	require.NoError(t, s.Start())
	return dir, s, persistClient(t, s.ServiceURL())
}

// TestEntryCacheRestart: after a restart nothing of the data directory is
// held in memory, and cursors and messages are as they were.
func TestEntryCacheRestart(t *testing.T) {
	dir, s1, c1 := startToRestart(t)
	const topic = "cache-restart"
	cons, err := c1.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	sendN(t, c1, topic, 0, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 40 {
		m, err := cons.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, cons.Ack(m))
	}
	cons.Close()
	c1.Close()
	require.NoError(t, s1.Close())

	s2 := startPersist(t, Options{DataDir: dir})
	n, _ := cachedEntries(t, s2, topic)
	require.Zero(t, n)
	require.Zero(t, s2.cacheBytes.Load())
	c2 := persistClient(t, s2.ServiceURL())
	cons2, err := c2.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Exclusive})
	require.NoError(t, err)
	defer cons2.Close()
	for i := 40; i < 100; i++ {
		m, err := cons2.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, payload(i), m.Payload())
		require.NoError(t, cons2.Ack(m))
	}
}

// TestEntryCacheWithoutDataDir: the in-memory broker drops nothing.
func TestEntryCacheWithoutDataDir(t *testing.T) {
	s := startPersist(t, Options{EntryCacheSize: 1})
	c := persistClient(t, s.ServiceURL())
	const topic = "cache-memory"
	sendN(t, c, topic, 0, 50)
	n, _ := cachedEntries(t, s, topic)
	require.Equal(t, 50, n)
	readAll(t, c, topic, 50)
}

// TestReadEntryDamaged: a record damaged on disk after it was dropped from
// memory is reported, not delivered as garbage.
func TestReadEntryDamaged(t *testing.T) {
	dir := t.TempDir()
	s := startPersist(t, Options{DataDir: dir})
	c := persistClient(t, s.ServiceURL())
	const topic = "cache-damaged"
	sendN(t, c, topic, 0, 10)
	fs := s.store.(*fileStore)
	full := "persistent://public/default/" + topic
	data, err := fs.readEntry(full, 3)
	require.NoError(t, err)
	require.True(t, bytes.Contains(data, payload(3)))

	segs, err := filepath.Glob(filepath.Join(dir, "topics", "*", "*"+segmentSuffix))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	at := bytes.Index(b, payload(3))
	require.Positive(t, at)
	b[at+20] ^= 0xff
	require.NoError(t, os.WriteFile(segs[0], b, 0o644))

	_, err = fs.readEntry(full, 3)
	require.ErrorIs(t, err, errCorrupt)
	_, err = fs.readEntry(full, 10)
	require.ErrorIs(t, err, errNotIndexed)
	data, err = fs.readEntry(full, 4)
	require.NoError(t, err)
	require.True(t, bytes.Contains(data, payload(4)))
}

// TestEntryCacheRestartKeepsDelays: a restart loads entries' metadata only,
// delivery times included: a delayed message still waits for its time.
func TestEntryCacheRestartKeepsDelays(t *testing.T) {
	dir, s1, c1 := startToRestart(t)
	const topic = "cache-restart-delays"
	opts := pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s", Type: pulsar.Shared}
	cons, err := c1.Subscribe(opts)
	require.NoError(t, err)
	cons.Close()
	p, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	due := time.Now().Add(2 * time.Second)
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("later"), DeliverAt: due})
	require.NoError(t, err)
	_, err = p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("now")})
	require.NoError(t, err)
	p.Close()
	c1.Close()
	require.NoError(t, s1.Close())

	s2 := startPersist(t, Options{DataDir: dir})
	c2 := persistClient(t, s2.ServiceURL())
	cons2, err := c2.Subscribe(opts)
	require.NoError(t, err)
	defer cons2.Close()
	m, err := cons2.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "now", string(m.Payload()))
	require.NoError(t, cons2.Ack(m))
	m, err = cons2.Receive(ctx)
	require.NoError(t, err)
	require.Equal(t, "later", string(m.Payload()))
	require.False(t, time.Now().Before(due.Add(-50*time.Millisecond)), "a delayed message came %v early", time.Until(due))
}

// TestEntryCacheTopicDeleted: deleting a topic takes its cached bytes off
// the server's count.
func TestEntryCacheTopicDeleted(t *testing.T) {
	s := startPersist(t, Options{DataDir: t.TempDir()})
	c := persistClient(t, s.ServiceURL())
	const topic = "cache-deleted"
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "unread", Type: pulsar.Shared})
	require.NoError(t, err)
	cons.Close()
	sendN(t, c, topic, 0, 20)
	_, b := cachedEntries(t, s, topic)
	require.Positive(t, b, "the subscription has read nothing: the entries stay cached")
	require.Equal(t, b, s.cacheBytes.Load())

	req, err := http.NewRequest(http.MethodDelete, s.AdminURL()+"/admin/v2/persistent/public/default/"+topic+"?force=true", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "%s", body)
	require.Zero(t, s.cacheBytes.Load())
}
