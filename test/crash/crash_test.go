package crash

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	pulsarlog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/redis/go-redis/v9"
)

var (
	flagDuration  = flag.Duration("crash.duration", 0, "how long producers take new keys while the harness kills (default 60s, or PSC_CRASH_DURATION)")
	flagProducers = flag.Int("crash.producers", 16, "concurrent HTTP producers")
	flagKills     = flag.Int("crash.kills", 0, "sidecar SIGKILLs (0: one per 10 s of the run, at least 5)")
	flagSeed      = flag.Uint64("crash.seed", 0, "random seed for kill times (0: from the clock)")
	flagKeep      = flag.String("crash.keep", "", "directory to keep the run in (logs, AOF, broker and sidecar data); default a temporary one")
)

const (
	topics        = 4
	clientTimeout = 15 * time.Second
	finishWithin  = 3 * time.Minute // for in-flight keys to get their 2xx after the kills
	readWithin    = 2 * time.Minute // for every acknowledged key to be read back
)

// TestCrash is issue 12's crash harness (see doc.go).
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash harness: skipped in -short (it runs real processes for about two minutes)")
	}
	redisBin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("crash harness: redis-server is not installed (apt-get install -y redis-server); nothing was run")
	}
	dur := runDuration(t)
	kills := *flagKills
	if kills <= 0 {
		kills = max(5, int(dur/(10*time.Second)))
	}
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	dir := *flagKeep
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("crash harness: %s, %d producers, %d sidecar kills, 1 broker kill, seed %d, dir %s",
		dur, *flagProducers, kills, seed, dir)

	bins := buildBinaries(t, dir)
	h := newHarness(t, dir, redisBin, bins)
	h.startAll()

	run := &producers{h: h, stop: make(chan struct{})}
	run.start(*flagProducers)

	// Kill points: uniform over the run, in order; the broker's among them.
	type event struct {
		at     time.Duration
		broker bool
	}
	start := time.Now()
	at := func() time.Duration { return time.Duration(float64(dur) * (0.05 + 0.85*rng.Float64())) }
	events := []event{{at: at(), broker: true}}
	for range kills {
		events = append(events, event{at: at()})
	}
	slices.SortFunc(events, func(a, b event) int { return int(a.at - b.at) })
	for _, ev := range events {
		if d := time.Until(start.Add(ev.at)); d > 0 {
			time.Sleep(d)
		}
		if ev.broker {
			h.killBroker(rng)
		} else {
			h.killSidecar(rng)
		}
	}
	if d := time.Until(start.Add(dur)); d > 0 {
		time.Sleep(d)
	}

	// No new keys; every key in flight is retried to its 2xx.
	close(run.stop)
	if !run.wait(finishWithin) {
		t.Fatalf("crash harness: %d keys still without a 2xx after %s: %v", run.inFlight.Load(), finishWithin, run.stuck())
	}
	h.waitSpoolEmpty(time.Minute)
	acked := readAckLog(t, h.logPath)
	copies := h.readTopics(acked, readWithin)
	r := check(acked, copies)
	r.sidecarKills, r.brokerKills = h.sidecarKills, h.brokerKills
	r.requests, r.answers409, r.answers5xx, r.connErrors = run.requests.Load(), run.answers409.Load(), run.answers5xx.Load(), run.connErrors.Load()
	r.duplicateAnswers, r.riskAnswers = run.duplicateAnswers.Load(), run.riskAnswers.Load()
	t.Log(r.summary())
	h.stopAll()

	if len(r.missing) > 0 {
		t.Errorf("%d acknowledged keys missing, e.g. %v", len(r.missing), first(r.missing, 10))
	}
	if len(r.twoUIDs) > 0 {
		t.Errorf("%d keys under two or more uids, e.g. %v", len(r.twoUIDs), first(r.twoUIDs, 10))
	}
	if len(r.wrongUID) > 0 {
		t.Errorf("%d keys with a copy under a uid other than the one their 2xx answered, e.g. %v", len(r.wrongUID), first(r.wrongUID, 10))
	}
	if r.acked == 0 || r.sidecarKills == 0 || r.brokerKills == 0 {
		t.Errorf("the run proved nothing: %d keys acknowledged, %d sidecar kills, %d broker kills", r.acked, r.sidecarKills, r.brokerKills)
	}
}

func runDuration(t *testing.T) time.Duration {
	if *flagDuration > 0 {
		return *flagDuration
	}
	if v := os.Getenv("PSC_CRASH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("PSC_CRASH_DURATION=%q: want a Go duration such as 10m", v)
		}
		return d
	}
	return 60 * time.Second
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// --- binaries and processes ---

type binaries struct{ sidecar, broker string }

// buildBinaries builds the two commands from this checkout (without -race:
// the harness drives them as a user would).
func buildBinaries(t *testing.T, dir string) binaries {
	root := moduleRoot(t)
	b := binaries{sidecar: filepath.Join(dir, "bin", "pulsar-sidecar"), broker: filepath.Join(dir, "bin", "minipulsar")}
	for out, pkg := range map[string]string{b.sidecar: "./cmd/pulsar-sidecar", b.broker: "./cmd/minipulsar"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return b
}

func moduleRoot(t *testing.T) string {
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			t.Fatal("no go.mod above the test's directory")
		}
		d = up
	}
}

// proc is one child process, restartable with the same arguments. Its
// output is appended to a log file.
type proc struct {
	name, bin, log string
	args           []string
	cmd            *exec.Cmd
	done           chan struct{}
}

func (p *proc) start() error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n=== harness: start %s at %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process and waits up to wait for it to exit;
// then it is killed.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	if p.cmd == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail is the end of the process's log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// --- the harness ---

type harness struct {
	t                         *testing.T
	dir, logPath              string
	redis, broker, sidecar    *proc
	redisAddr, pulsarURL, api string
	adminURL                  string
	http                      *http.Client
	sidecarKills, brokerKills int
}

func newHarness(t *testing.T, dir, redisBin string, b binaries) *harness {
	h := &harness{t: t, dir: dir, logPath: filepath.Join(dir, "acked.log"),
		http: &http.Client{Timeout: clientTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	rp, pp, ap, sp := freePort(t), freePort(t), freePort(t), freePort(t)
	h.redisAddr = "127.0.0.1:" + strconv.Itoa(rp)
	h.pulsarURL = "pulsar://127.0.0.1:" + strconv.Itoa(pp)
	h.adminURL = "http://127.0.0.1:" + strconv.Itoa(ap)
	h.api = "http://127.0.0.1:" + strconv.Itoa(sp)
	for _, d := range []string{"redis", "broker", "sidecar"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.redis = &proc{name: "redis-server", bin: redisBin, log: filepath.Join(dir, "redis.log"), args: []string{
		"--port", strconv.Itoa(rp), "--bind", "127.0.0.1", "--dir", filepath.Join(dir, "redis"),
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"}}
	h.broker = &proc{name: "minipulsar", bin: b.broker, log: filepath.Join(dir, "broker.log"), args: []string{
		"--addr", "127.0.0.1:" + strconv.Itoa(pp), "--admin-addr", "127.0.0.1:" + strconv.Itoa(ap),
		"--data-dir", filepath.Join(dir, "broker"), "--log-level", "warn"}}
	h.sidecar = &proc{name: "pulsar-sidecar", bin: b.sidecar, log: filepath.Join(dir, "sidecar.log"), args: []string{
		"--listen", "127.0.0.1:" + strconv.Itoa(sp), "--data-dir", filepath.Join(dir, "sidecar"),
		"--pulsar-url", h.pulsarURL, "--pulsar-admin-url", h.adminURL, "--redis-addr", h.redisAddr,
		"--delay-levels", "off", "--trace-store", "off", "--log-level", "warn"}}
	t.Cleanup(func() {
		for _, p := range []*proc{h.sidecar, h.broker, h.redis} {
			p.signal(syscall.SIGKILL, 10*time.Second)
		}
	})
	return h
}

func (h *harness) startAll() {
	h.startProc(h.redis, h.waitRedis)
	h.startProc(h.broker, h.waitBroker)
	h.startProc(h.sidecar, h.waitSidecar)
}

// stopAll stops the processes gracefully, in the sidecar's order.
func (h *harness) stopAll() {
	h.sidecar.signal(syscall.SIGTERM, 30*time.Second)
	h.broker.signal(syscall.SIGTERM, 10*time.Second)
	h.redis.signal(syscall.SIGTERM, 10*time.Second)
}

func (h *harness) startProc(p *proc, ready func(time.Time) error) {
	h.t.Helper()
	if err := p.start(); err != nil {
		h.t.Fatalf("start %s: %v", p.name, err)
	}
	if err := ready(time.Now().Add(60 * time.Second)); err != nil {
		h.t.Fatalf("%s not ready: %v\n--- %s\n%s", p.name, err, p.log, p.tail())
	}
}

func (h *harness) waitRedis(deadline time.Time) error {
	rdb := redis.NewClient(&redis.Options{Addr: h.redisAddr, DisableIdentity: true})
	defer rdb.Close()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil || time.Now().After(deadline) || h.redis.exited() {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) waitBroker(deadline time.Time) error {
	for {
		resp, err := h.http.Get(h.adminURL + "/admin/v2/clusters")
		if err == nil {
			resp.Body.Close()
			c, derr := net.DialTimeout("tcp", strings.TrimPrefix(h.pulsarURL, "pulsar://"), time.Second)
			if derr == nil {
				c.Close()
				return nil
			}
			err = derr
		}
		if h.broker.exited() {
			return errors.New("minipulsar exited")
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) waitSidecar(deadline time.Time) error {
	for {
		resp, err := h.http.Get(h.api + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		if h.sidecar.exited() {
			return errors.New("pulsar-sidecar exited")
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killSidecar SIGKILLs the sidecar and starts it again after a short pause.
func (h *harness) killSidecar(rng *rand.Rand) {
	h.t.Helper()
	if h.sidecar.exited() {
		h.t.Fatalf("pulsar-sidecar exited by itself\n%s", h.sidecar.tail())
	}
	h.sidecar.signal(syscall.SIGKILL, 10*time.Second)
	h.sidecarKills++
	time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
	h.startProc(h.sidecar, h.waitSidecar)
}

// killBroker SIGKILLs the broker while the sidecar runs (it retries, then
// spools), and starts it again after one to three seconds.
func (h *harness) killBroker(rng *rand.Rand) {
	h.t.Helper()
	h.broker.signal(syscall.SIGKILL, 10*time.Second)
	h.brokerKills++
	time.Sleep(time.Second + time.Duration(rng.IntN(2000))*time.Millisecond)
	h.startProc(h.broker, h.waitBroker)
}

// waitSpoolEmpty waits until the sidecar has replayed its spool
// (psc_spool_depth 0), so the topics hold everything before they are read.
func (h *harness) waitSpoolEmpty(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if d, ok := h.metric("psc_spool_depth"); ok && d == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	h.t.Logf("the sidecar's spool was not empty after %s; reading the topics anyway", within)
}

func (h *harness) metric(name string) (float64, bool) {
	resp, err := h.http.Get(h.api + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum, found = sum+v, true
		}
	}
	return sum, found
}

func topicName(i int) string { return fmt.Sprintf("crash-%d", i) }

// --- producers ---

type producers struct {
	h        *harness
	stop     chan struct{}
	wg       sync.WaitGroup
	next     atomic.Int64
	inFlight atomic.Int64
	current  sync.Map // producer index -> key it is retrying

	requests, answers409, answers5xx, connErrors atomic.Int64
	duplicateAnswers, riskAnswers                atomic.Int64

	log *ackLog
}

func (p *producers) start(n int) {
	l, err := openAckLog(p.h.logPath)
	if err != nil {
		p.h.t.Fatal(err)
	}
	p.log = l
	for i := range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.loop(i)
		}()
	}
}

// wait waits for the producers to finish their keys; false on timeout.
func (p *producers) wait(within time.Duration) bool {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.log.close()
		return true
	case <-time.After(within):
		return false
	}
}

func (p *producers) stuck() []string {
	var out []string
	p.current.Range(func(_, v any) bool { out = append(out, v.(string)); return true })
	return out
}

type produceAnswer struct {
	Results []struct {
		UID           string `json:"uid"`
		Status        string `json:"status"`
		Duplicate     bool   `json:"duplicate"`
		DuplicateRisk bool   `json:"duplicateRisk"`
	} `json:"results"`
}

func (p *producers) loop(idx int) {
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		n := p.next.Add(1)
		key := fmt.Sprintf("key-%07d", n)
		topic := int(n % topics)
		body, _ := json.Marshal(map[string]any{"messages": []map[string]any{{
			"payload": key + "|" + strings.Repeat("x", 200), "key": key, "idempotencyKey": key}}})
		p.inFlight.Add(1)
		p.current.Store(idx, key)
		backoff := 20 * time.Millisecond
		for {
			ans, retryAfter, ok := p.send(topic, body)
			if ok {
				r := ans.Results[0]
				if r.Duplicate {
					p.duplicateAnswers.Add(1)
				}
				if r.DuplicateRisk {
					p.riskAnswers.Add(1)
				}
				if err := p.log.commit(fmt.Sprintf("%s\t%d\t%s\t%s\n", key, topic, r.UID, r.Status)); err != nil {
					p.h.t.Errorf("ack log: %v", err)
				}
				break
			}
			// Same key, same payload, until a 2xx: what a PHP worker does.
			time.Sleep(max(backoff, retryAfter))
			backoff = min(2*backoff, 500*time.Millisecond)
		}
		p.current.Delete(idx)
		p.inFlight.Add(-1)
	}
}

// send posts one request; ok when the answer is 2xx with a durable result.
func (p *producers) send(topic int, body []byte) (produceAnswer, time.Duration, bool) {
	var ans produceAnswer
	p.requests.Add(1)
	req, _ := http.NewRequest(http.MethodPost, p.h.api+"/v1/topics/public/default/"+topicName(topic)+"/messages", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.h.http.Do(req)
	if err != nil {
		p.connErrors.Add(1)
		return ans, 0, false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		p.connErrors.Add(1)
		return ans, 0, false
	}
	switch {
	case resp.StatusCode == http.StatusConflict:
		p.answers409.Add(1)
	case resp.StatusCode >= 500:
		p.answers5xx.Add(1)
	}
	if resp.StatusCode/100 != 2 {
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return ans, min(time.Duration(ra)*time.Second, time.Second), false
	}
	if err := json.Unmarshal(raw, &ans); err != nil || len(ans.Results) != 1 || ans.Results[0].UID == "" {
		p.h.t.Errorf("2xx answer without a uid: %s", raw)
		return ans, 0, false
	}
	return ans, 0, true
}

// ackLog appends lines and fsyncs them before commit returns; concurrent
// commits share one write and one fsync.
type ackLog struct {
	f  *os.File
	ch chan logReq
	wg sync.WaitGroup
}

type logReq struct {
	line string
	done chan error
}

func openAckLog(path string) (*ackLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	l := &ackLog{f: f, ch: make(chan logReq, 1024)}
	l.wg.Add(1)
	go l.run()
	return l, nil
}

func (l *ackLog) commit(line string) error {
	done := make(chan error, 1)
	l.ch <- logReq{line: line, done: done}
	return <-done
}

func (l *ackLog) run() {
	defer l.wg.Done()
	for req := range l.ch {
		batch := []logReq{req}
	more:
		for {
			select {
			case r, ok := <-l.ch:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		var buf strings.Builder
		for _, r := range batch {
			buf.WriteString(r.line)
		}
		_, err := l.f.WriteString(buf.String())
		if err == nil {
			err = l.f.Sync()
		}
		for _, r := range batch {
			r.done <- err
		}
	}
}

func (l *ackLog) close() {
	close(l.ch)
	l.wg.Wait()
	_ = l.f.Close()
}

// --- reading back and checking ---

type ackedKey struct {
	topic int
	uid   string
}

// readAckLog reads the fsynced log: what the producers were answered 2xx.
func readAckLog(t *testing.T, path string) map[string]ackedKey {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]ackedKey{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 4 {
			t.Fatalf("ack log line %q", sc.Text())
		}
		topic, _ := strconv.Atoi(parts[1])
		if prev, ok := out[parts[0]]; ok && prev.uid != parts[2] {
			t.Errorf("key %s answered 2xx twice with uids %s and %s", parts[0], prev.uid, parts[2])
		}
		out[parts[0]] = ackedKey{topic: topic, uid: parts[2]}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type copyRead struct{ key, uid string }

// readTopics reads every topic from the start with a native consumer until
// every acknowledged key of it was seen and nothing came for 3 s (or
// within has passed).
func (h *harness) readTopics(acked map[string]ackedKey, within time.Duration) []copyRead {
	h.t.Helper()
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: h.pulsarURL, OperationTimeout: 30 * time.Second,
		Logger: pulsarlog.NewLoggerWithSlog(slog.New(slog.DiscardHandler))})
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	want := make([]int, topics)
	for _, a := range acked {
		want[a.topic]++
	}
	deadline := time.Now().Add(within)
	var out []copyRead
	for i := range topics {
		cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: "persistent://public/default/" + topicName(i),
			SubscriptionName: "crash-verify", Type: pulsar.Exclusive, SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest})
		if err != nil {
			h.t.Fatalf("subscribe %s: %v", topicName(i), err)
		}
		seen := map[string]bool{}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			m, err := cons.Receive(ctx)
			cancel()
			if err != nil {
				if len(seen) >= want[i] || time.Now().After(deadline) {
					break
				}
				continue
			}
			props := m.Properties()
			k := props["psc-idempotency-key"]
			out = append(out, copyRead{key: k, uid: props["psc-uid"]})
			if _, ok := acked[k]; ok {
				seen[k] = true
			}
			_ = cons.Ack(m)
		}
		cons.Close()
	}
	return out
}

type result struct {
	acked, copies, duplicateCopies, readKeys int
	missing, twoUIDs, wrongUID               []string
	sidecarKills, brokerKills                int
	requests, answers409, answers5xx         int64
	connErrors, duplicateAnswers             int64
	riskAnswers                              int64
}

func check(acked map[string]ackedKey, copies []copyRead) *result {
	r := &result{acked: len(acked), copies: len(copies)}
	uids := map[string]map[string]int{}
	for _, c := range copies {
		if uids[c.key] == nil {
			uids[c.key] = map[string]int{}
		}
		uids[c.key][c.uid]++
	}
	r.readKeys = len(uids)
	for k, us := range uids {
		n := 0
		for _, c := range us {
			n += c
		}
		r.duplicateCopies += n - 1
		if len(us) > 1 {
			r.twoUIDs = append(r.twoUIDs, k)
		}
		if a, ok := acked[k]; ok {
			for u := range us {
				if u != a.uid {
					r.wrongUID = append(r.wrongUID, k)
					break
				}
			}
		}
	}
	for k := range acked {
		if _, ok := uids[k]; !ok {
			r.missing = append(r.missing, k)
		}
	}
	slices.Sort(r.missing)
	slices.Sort(r.twoUIDs)
	slices.Sort(r.wrongUID)
	return r
}

func (r *result) summary() string {
	return fmt.Sprintf("crash harness summary: keys acked %d, copies read %d (keys %d), duplicate copies %d, "+
		"keys under two uids %d, keys with a copy under another uid than acked %d, acked keys missing %d; "+
		"sidecar kills %d, broker kills %d; requests %d (409 %d, 5xx %d, connection errors %d), "+
		"2xx answered duplicate %d, duplicateRisk %d",
		r.acked, r.copies, r.readKeys, r.duplicateCopies, len(r.twoUIDs), len(r.wrongUID), len(r.missing),
		r.sidecarKills, r.brokerKills, r.requests, r.answers409, r.answers5xx, r.connErrors, r.duplicateAnswers, r.riskAnswers)
}
