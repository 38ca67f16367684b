package minipulsar

// Persistence through the real client: what a client saw before a restart is
// what it sees after it.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/stretchr/testify/require"
)

func persistClient(t testing.TB, url string) pulsar.Client {
	t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{
		URL:               url,
		OperationTimeout:  10 * time.Second,
		ConnectionTimeout: 5 * time.Second,
		Logger:            plog.DefaultNopLogger(),
	})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func startPersist(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	require.NoError(t, s.Start())
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func idString(id pulsar.MessageID) string {
	return fmt.Sprintf("%d:%d:%d", id.LedgerID(), id.EntryID(), id.BatchIdx())
}

// readAll reads a topic from the beginning with a reader and returns
// payload -> message id.
func readAll(t *testing.T, c pulsar.Client, topic string, want int) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	defer r.Close()
	got := map[string]string{}
	for len(got) < want {
		m, err := r.Next(ctx)
		require.NoError(t, err, "after %d of %d messages", len(got), want)
		require.NotContains(t, got, string(m.Payload()), "duplicate")
		got[string(m.Payload())] = idString(m.ID())
	}
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if m, err := r.Next(short); err == nil {
		t.Fatalf("unexpected message %q after the %d expected", m.Payload(), want)
	}
	return got
}

func TestPersistRestart(t *testing.T) {
	dir := t.TempDir()
	s1 := NewServer(Options{DataDir: dir})
	require.NoError(t, s1.Start())
	c1 := persistClient(t, s1.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "persist-restart"

	cons, err := c1.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared,
		AckWithResponse: true, EnableBatchIndexAcknowledgment: true,
	})
	require.NoError(t, err)
	batched, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: topic, BatchingMaxMessages: 50, BatchingMaxPublishDelay: 5 * time.Millisecond})
	require.NoError(t, err)
	single, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
	require.NoError(t, err)

	const nb, ns = 500, 100
	var mu sync.Mutex
	sent := map[string]string{}
	for i := range nb {
		p := fmt.Sprintf("b-%04d", i)
		batched.SendAsync(ctx, &pulsar.ProducerMessage{Payload: []byte(p), Properties: map[string]string{"i": fmt.Sprint(i)}},
			func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
				require.NoError(t, err)
				mu.Lock()
				sent[p] = idString(id)
				mu.Unlock()
			})
	}
	require.NoError(t, batched.FlushWithCtx(context.Background()))
	for i := range ns {
		p := fmt.Sprintf("s-%04d", i)
		id, err := single.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(p), Key: fmt.Sprint(i)})
		require.NoError(t, err)
		sent[p] = idString(id)
	}

	// Acknowledge two thirds, inside batches too (batch index acks).
	unacked := map[string]bool{}
	for range nb + ns {
		m, err := cons.Receive(ctx)
		require.NoError(t, err)
		var i int
		_, err = fmt.Sscanf(string(m.Payload())[2:], "%d", &i)
		require.NoError(t, err)
		if i%3 == 0 {
			unacked[string(m.Payload())] = true
			continue
		}
		require.NoError(t, cons.Ack(m))
	}
	c1.Close()
	require.NoError(t, s1.Close())

	// A new Server on the same directory: a process restart.
	s2 := startPersist(t, Options{DataDir: dir})
	c2 := persistClient(t, s2.ServiceURL())
	require.Equal(t, sent, readAll(t, c2, topic, nb+ns), "every message, with its message id")

	cons2, err := c2.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", Type: pulsar.Shared, EnableBatchIndexAcknowledgment: true,
	})
	require.NoError(t, err)
	got := map[string]bool{}
	for len(got) < len(unacked) {
		m, err := cons2.Receive(ctx)
		require.NoError(t, err)
		require.True(t, unacked[string(m.Payload())], "acknowledged %q delivered again", m.Payload())
		got[string(m.Payload())] = true
		var i int
		_, err = fmt.Sscanf(string(m.Payload())[2:], "%d", &i)
		require.NoError(t, err)
		if strings.HasPrefix(string(m.Payload()), "b-") {
			require.Equal(t, fmt.Sprint(i), m.Properties()["i"], "properties survive")
		} else {
			require.Equal(t, fmt.Sprint(i), m.Key(), "keys survive")
		}
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	m, err := cons2.Receive(short)
	require.Error(t, err, "nothing beyond the unacknowledged messages, got %v", m)
}

func TestPersistCloseStartSameServer(t *testing.T) {
	dir := t.TempDir()
	s := startPersist(t, Options{DataDir: dir})
	addr, admin := s.Addr(), s.AdminAddr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "persist-same"
	produce := func(from, to int) {
		c := persistClient(t, s.ServiceURL())
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: true})
		require.NoError(t, err)
		for i := from; i < to; i++ {
			_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint("m", i))})
			require.NoError(t, err)
		}
		c.Close()
	}
	produce(0, 10)
	require.NoError(t, s.Close())
	require.NoError(t, s.Start())
	require.Equal(t, addr, s.Addr())
	require.Equal(t, admin, s.AdminAddr())
	produce(10, 20) // the store writes again after Start

	c := persistClient(t, s.ServiceURL())
	require.Len(t, readAll(t, c, topic, 20), 20)
	cons, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic: topic, SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, AckWithResponse: true,
	})
	require.NoError(t, err)
	for range 15 {
		m, err := cons.Receive(ctx)
		require.NoError(t, err)
		require.NoError(t, cons.Ack(m))
	}
	c.Close()
	require.NoError(t, s.Close())

	s2 := startPersist(t, Options{DataDir: dir})
	c2 := persistClient(t, s2.ServiceURL())
	require.Len(t, readAll(t, c2, topic, 20), 20)
	cons2, err := c2.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "s"})
	require.NoError(t, err)
	for i := 15; i < 20; i++ {
		m, err := cons2.Receive(ctx)
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("m", i), string(m.Payload()))
	}
}

func TestPersistPartitionedTopicAndLedgers(t *testing.T) {
	dir := t.TempDir()
	s1 := NewServer(Options{DataDir: dir})
	require.NoError(t, s1.Start())
	require.NoError(t, s1.CreatePartitionedTopic("pt", 3))
	c1 := persistClient(t, s1.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: "pt", DisableBatching: true})
	require.NoError(t, err)
	ledgers := map[uint64]bool{}
	for i := range 30 {
		id, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i)), Key: fmt.Sprint("k", i)})
		require.NoError(t, err)
		ledgers[uint64(id.LedgerID())] = true
	}
	require.Len(t, ledgers, 3)
	require.NoError(t, s1.CreateTopic("deleted-later"))
	require.NoError(t, s1.DeleteTopic("deleted-later", false))
	c1.Close()
	require.NoError(t, s1.Close())

	s2 := startPersist(t, Options{DataDir: dir})
	c2 := persistClient(t, s2.ServiceURL())
	parts, err := c2.TopicPartitions("pt")
	require.NoError(t, err)
	require.Len(t, parts, 3)
	cons, err := c2.Subscribe(pulsar.ConsumerOptions{Topic: "pt", SubscriptionName: "s", SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
	require.NoError(t, err)
	seen := map[string]bool{}
	for len(seen) < 30 {
		m, err := cons.Receive(ctx)
		require.NoError(t, err)
		seen[string(m.Payload())] = true
	}
	require.Error(t, s2.CreateTopic("pt"), "the partitioned topic exists")

	// A topic created after the restart gets a ledger no earlier topic had,
	// nor the deleted one.
	p2, err := c2.CreateProducer(pulsar.ProducerOptions{Topic: "after-restart"})
	require.NoError(t, err)
	id, err := p2.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")})
	require.NoError(t, err)
	for l := range ledgers {
		require.Greater(t, uint64(id.LedgerID()), l)
	}
	require.Greater(t, uint64(id.LedgerID()), uint64(4))
}

func TestPersistDeduplication(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: dir, Deduplication: true}
	s1 := NewServer(opts)
	require.NoError(t, s1.Start())
	c1 := persistClient(t, s1.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const topic = "persist-dedup"
	p, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "dedup-p", DisableBatching: true})
	require.NoError(t, err)
	require.Equal(t, int64(-1), p.LastSequenceID())
	for i := range 10 {
		_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprint(i))})
		require.NoError(t, err)
	}
	require.Equal(t, int64(9), p.LastSequenceID())
	c1.Close()
	require.NoError(t, s1.Close())

	s2 := startPersist(t, opts)
	c2 := persistClient(t, s2.ServiceURL())
	p2, err := c2.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "dedup-p", DisableBatching: true})
	require.NoError(t, err)
	// The client's LastSequenceID is the last acknowledged one (-1 until a
	// send); PRODUCER_SUCCESS's last_sequence_id seeds its next sequence id,
	// so the first send after the restart is acknowledged as 10, not 0.
	_, err = p2.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("10")})
	require.NoError(t, err)
	require.Equal(t, int64(10), p2.LastSequenceID(), "the sequence continues from the stored last sequence id")
	old := int64(5)
	_, err = p2.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("5 again"), SequenceID: &old})
	require.NoError(t, err)
	got := readAll(t, c2, topic, 11)
	require.NotContains(t, got, "5 again", "a re-sent sequence id is dropped")
}

func TestPersistCorruptDataDirStillServes(t *testing.T) {
	dir := t.TempDir()
	s1 := NewServer(Options{DataDir: dir})
	require.NoError(t, s1.Start())
	c1 := persistClient(t, s1.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := c1.CreateProducer(pulsar.ProducerOptions{Topic: "damaged", DisableBatching: true})
	require.NoError(t, err)
	for i := range 20 {
		_, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("m%02d", i))})
		require.NoError(t, err)
	}
	c1.Close()
	require.NoError(t, s1.Close())

	segs, err := filepath.Glob(filepath.Join(dir, "topics", "*", "*"+segmentSuffix))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	off := segmentHeaderSize
	for range 10 {
		_, n, err := readRecord(b[off:])
		require.NoError(t, err)
		off += n
	}
	b[off+recordHeaderSize+30] ^= 0xff
	require.NoError(t, os.WriteFile(segs[0], b, 0o644))

	logs := &logBuffer{}
	s2 := startPersist(t, Options{DataDir: dir, Logger: logs.logger()})
	c2 := persistClient(t, s2.ServiceURL())
	got := readAll(t, c2, "damaged", 10)
	for i := range 10 {
		require.Contains(t, got, fmt.Sprintf("m%02d", i))
	}
	require.Contains(t, logs.String(), "corrupt segment")
}

func TestPersistStartWhileDirectoryInUse(t *testing.T) {
	dir := t.TempDir()
	first := startPersist(t, Options{DataDir: dir})
	s := NewServer(Options{DataDir: dir})
	require.ErrorIs(t, s.Start(), ErrDataDirLocked)
	require.ErrorIs(t, s.Start(), ErrDataDirLocked, "a failed Start leaves nothing half loaded")
	require.NoError(t, first.Close())

	require.NoError(t, s.Start())
	t.Cleanup(func() { _ = s.Close() })
	c := persistClient(t, s.ServiceURL())
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "after-lock"})
	require.NoError(t, err)
	_, err = p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")})
	require.NoError(t, err)
	require.ErrorIs(t, first.Start(), ErrDataDirLocked, "the first Server cannot take the directory back")
}

// crashChildEnv switches the test binary into the child of
// TestPersistCrashKeepsAcknowledgedMessages.
const crashChildEnv = "MINIPULSAR_CRASH_CHILD_DIR"

// TestPersistCrashKeepsAcknowledgedMessages runs a broker and two producers in
// a child process, kills it with SIGKILL while they send, and checks that
// every message the child saw acknowledged is in the data directory.
func TestPersistCrashKeepsAcknowledgedMessages(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPersistCrashKeepsAcknowledgedMessages$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	acked := map[string]string{} // payload -> message id
	lines := bufio.NewScanner(out)
	deadline := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Kill() })
	defer deadline.Stop()
	const killAfter = 20000
	for lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) != 3 || f[0] != "ACK" {
			continue
		}
		acked[f[1]] = f[2]
		if len(acked) == killAfter {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		}
	}
	err = cmd.Wait()
	killed = true
	require.GreaterOrEqual(t, len(acked), killAfter, "the child stopped early: %v", err)
	t.Logf("child killed after %d acknowledged messages (%v)", len(acked), err)

	logs := &logBuffer{}
	s := startPersist(t, Options{DataDir: dir, Logger: logs.logger()})
	require.NotContains(t, logs.String(), "level=ERROR")
	c := persistClient(t, s.ServiceURL())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: "crash", StartMessageID: pulsar.EarliestMessageID()})
	require.NoError(t, err)
	found := 0
	stored := 0
	for found < len(acked) {
		m, err := r.Next(ctx)
		require.NoError(t, err, "found %d of %d acknowledged messages among %d stored", found, len(acked), stored)
		stored++
		if id, ok := acked[string(m.Payload())]; ok {
			require.Equal(t, id, idString(m.ID()), "message %s", m.Payload())
			found++
		}
	}
	t.Logf("all %d acknowledged messages survived (%d read)", found, stored)
}

// crashChild is the child's side: a broker on dir and two producers (one
// batching, one not) on the same topic, printing each acknowledged message
// until killed.
func crashChild(dir string) {
	s := NewServer(Options{DataDir: dir})
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), Logger: plog.DefaultNopLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	run := func(name string, opts pulsar.ProducerOptions) {
		opts.Topic = "crash"
		p, err := c.CreateProducer(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		for i := 0; ; i++ {
			payload := fmt.Sprintf("%s-%d", name, i)
			p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(payload)},
				func(id pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
					if err != nil {
						return
					}
					out.Lock()
					fmt.Fprintf(os.Stdout, "ACK %s %s\n", payload, idString(id))
					out.Unlock()
				})
		}
	}
	go run("batched", pulsar.ProducerOptions{BatchingMaxMessages: 100, BatchingMaxPublishDelay: time.Millisecond})
	run("single", pulsar.ProducerOptions{DisableBatching: true, MaxPendingMessages: 64})
}
