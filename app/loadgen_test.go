package app

// A lean HTTP/1.1 load generator for the produce benchmarks.
//
// The sidecar, the broker and the load generator share the machine's
// cores, so whatever the generator spends is taken from the server. Go's
// net/http client costs several times what a small request needs (a
// request and response object, header maps, a goroutine per connection
// for reading, gzip negotiation); with it the bare net/http handler
// reached only 0.6-0.7x of direct producer.Send on 2 cores. This one
// writes prebuilt request bytes on raw keep-alive TCP connections and
// reads back only the status line, Content-Length and the body, so the
// numbers measure the server.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// rawRequest is one HTTP/1.1 request built once as bytes. When seqHeader
// is set, that header's value is a unique id per request (a per-load nonce,
// the worker and a counter), written in place without allocating: for
// Idempotency-Key, every request must be a new key.
type rawRequest struct {
	Method    string
	Path      string
	Headers   []string // "Name: value"
	Body      []byte
	SeqHeader string // optional: a header whose value is unique per request

	// Check, when set, is called with every 200 answer's body.
	Check func(body []byte) error
}

// seqDigits is the width of the per-worker counter in a SeqHeader value.
const seqDigits = 12

// build returns the request bytes for worker w and the offset of the
// counter digits (-1 without SeqHeader).
func (r *rawRequest) build(host, nonce string, w int) ([]byte, int) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.Path, host)
	for _, h := range r.Headers {
		b.WriteString(h)
		b.WriteString("\r\n")
	}
	if r.Body != nil {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.Body))
	}
	at := -1
	if r.SeqHeader != "" {
		fmt.Fprintf(&b, "%s: %s-%03d-", r.SeqHeader, nonce, w)
		at = b.Len()
		b.Write(bytes.Repeat([]byte("0"), seqDigits))
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	return b.Bytes(), at
}

// putSeq writes n as seqDigits decimal digits at buf[at:].
func putSeq(buf []byte, at int, n uint64) {
	for i := at + seqDigits - 1; i >= at; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
}

// rawHTTPLoad sends req to addr (host:port) from conc keep-alive
// connections, one per worker, b.N requests in all, and reports req/s,
// p50-ms and p99-ms. Every answer must be 200.
func rawHTTPLoad(b *testing.B, conc int, addr string, req *rawRequest) loadStats {
	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	nonceHex := hex.EncodeToString(nonce)
	return runWorkers(b, conc, func(w int) (func() error, func(), error) {
		c, err := newRawConn(addr, req, nonceHex, w)
		if err != nil {
			return nil, nil, err
		}
		return c.do, func() { _ = c.conn.Close() }, nil
	})
}

// rawConn is one worker's connection.
type rawConn struct {
	conn  net.Conn
	r     *bufio.Reader
	buf   []byte // the request
	seqAt int
	seq   uint64
	check func([]byte) error
}

func newRawConn(addr string, req *rawRequest, nonce string, w int) (*rawConn, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	buf, at := req.build(addr, nonce, w)
	return &rawConn{conn: conn, r: bufio.NewReaderSize(conn, 16<<10), buf: buf, seqAt: at, check: req.Check}, nil
}

// do sends the request once and reads the answer.
func (c *rawConn) do() error {
	if c.seqAt >= 0 {
		c.seq++
		putSeq(c.buf, c.seqAt, c.seq)
	}
	if _, err := c.conn.Write(c.buf); err != nil {
		return err
	}
	status, body, err := readResponse(c.r)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("status %d: %s", status, body)
	}
	if c.check != nil {
		return c.check(body)
	}
	return nil
}

var errNoLength = errors.New("loadgen: answer without Content-Length (chunked answers are not supported)")

// readResponse reads one HTTP/1.1 answer: the status code, and the body,
// which stays valid only until the next read from r. It understands
// exactly what the servers under test send: a Content-Length body.
func readResponse(r *bufio.Reader) (status int, body []byte, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, fmt.Errorf("loadgen: bad status line %q", line)
	}
	status, err = atoiBytes(line[9:12])
	if err != nil {
		return 0, nil, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length := -1
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 { // the blank line: "\r\n" (or a bare "\n")
			break
		}
		const cl = "content-length:"
		if len(line) > len(cl) && bytes.EqualFold(line[:len(cl)], []byte(cl)) {
			if length, err = atoiBytes(bytes.TrimSpace(line[len(cl):])); err != nil {
				return 0, nil, fmt.Errorf("loadgen: bad header %q", line)
			}
		}
	}
	if length < 0 {
		return 0, nil, errNoLength
	}
	if length <= r.Size() {
		// Peek keeps the body in the reader's buffer: no copy, no allocation.
		if body, err = r.Peek(length); err != nil {
			return 0, nil, err
		}
		_, _ = r.Discard(length)
		return status, body, nil
	}
	body = make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return status, body, nil
}

func atoiBytes(b []byte) (int, error) {
	if len(b) == 0 || len(b) > 9 {
		return 0, strconv.ErrSyntax
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// runWorkers runs b.N operations from conc workers and reports req/s,
// p50-ms and p99-ms. newWorker prepares worker w (a connection, say)
// before the clock starts and returns its operation and cleanup. Workers
// take operations from a shared atomic counter, with no channel or
// goroutine per operation. (b.Loop cannot be shared between goroutines,
// hence b.N.) It also returns what it reported.
func runWorkers(b *testing.B, conc int, newWorker func(w int) (op func() error, cleanup func(), err error)) loadStats {
	ops := make([]func() error, conc)
	for w := range conc {
		op, cleanup, err := newWorker(w)
		if err != nil {
			b.Fatalf("worker %d: %v", w, err)
		}
		ops[w] = op
		if cleanup != nil {
			defer cleanup()
		}
	}
	hists := make([]latencyHist, conc)
	var next, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	n := int64(b.N)
	b.ResetTimer()
	stopProfile := loadProfile(b)
	cpu0, flt0 := processCPU(), minorFaults()
	ccpu0, cflt0 := childUsage()
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			h, op := &hists[w], ops[w]
			for next.Add(1) <= n {
				t := time.Now()
				if err := op(); err != nil {
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
					return // the connection is in an unknown state
				}
				h.record(time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, flt := processCPU()-cpu0, minorFaults()-flt0
	ccpu, cflt := childUsage()
	ccpu, cflt = ccpu-ccpu0, cflt-cflt0
	stopProfile()
	b.StopTimer()
	if k := failed.Load(); k > 0 {
		b.Fatalf("%d workers failed, first error: %v", k, firstErr)
	}
	var all latencyHist
	for i := range hists {
		all.merge(&hists[i])
	}
	b.ReportMetric(float64(all.count)/elapsed.Seconds(), "req/s")

	b.ReportMetric(all.quantile(0.50).Seconds()*1000, "p50-ms")
	b.ReportMetric(all.quantile(0.99).Seconds()*1000, "p99-ms")
	// The whole process's CPU (user and system) per operation: load
	// generator, server, client library and in-process broker together
	// (with the broker in a child process, see startChildBroker, its CPU
	// is added here and also shown on its own as broker-cpu-us/op).
	// Against elapsed time it also shows whether the run was CPU-bound.
	b.ReportMetric(float64((cpu+ccpu).Microseconds())/float64(all.count), "cpu-us/op")
	if benchChildPID.Load() != 0 {
		b.ReportMetric(float64(ccpu.Microseconds())/float64(all.count), "broker-cpu-us/op")
		b.ReportMetric(float64(cflt)/float64(all.count), "broker-minflt/op")
	}
	// Page faults: a heap growing into memory never touched before costs
	// a fault per 4 KiB page, which the CPU profile shows as the runtime
	// clearing new spans. With minipulsar holding every message in this
	// process's heap, later benchmarks run with a larger heap than earlier
	// ones; this shows when that, not the code under test, moves cpu-us/op.
	// This process only; a child broker's faults are broker-minflt/op.
	b.ReportMetric(float64(flt)/float64(all.count), "minflt/op")
	runtime.KeepAlive(ops)
	return loadStats{reqPerSec: float64(all.count) / elapsed.Seconds(), p50: all.quantile(0.50), p99: all.quantile(0.99),
		cpuPerOp: (cpu + ccpu) / time.Duration(max(all.count, 1)), hist: &all}
}

// loadStats is what runWorkers measured.
type loadStats struct {
	reqPerSec float64
	p50, p99  time.Duration
	cpuPerOp  time.Duration // this process (and a child broker), per request
	hist      *latencyHist  // every request's latency
}

// minorFaults is the number of minor page faults this process has taken.
func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

// loadProfile starts a CPU profile of the load alone when
// PSC_BENCH_CPUPROFILE names a file prefix: <prefix>-<benchmark>.prof,
// without the setup (connections, the other variants) or
// what a benchmark does after the load (the trace benchmark's catch-up).
// Do not combine it with -cpuprofile: a process has one CPU profile at a
// time.
func loadProfile(b *testing.B) func() {
	prefix := os.Getenv("PSC_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	name := strings.NewReplacer("/", "_", "=", "", "#", "_").Replace(b.Name())
	f, err := os.Create(fmt.Sprintf("%s-%s-n%d.prof", prefix, name, b.N))
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// latencyHist is a log-linear histogram of durations: 64 buckets per
// power of two of nanoseconds, so a quantile is off by at most 1/64
// (1.6%) of its value. Recording is two shifts and an increment; one
// histogram per worker, merged at the end.
type latencyHist struct {
	counts [64 * 64]uint64
	count  uint64
}

const histSubBits = 6

func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return shift<<histSubBits + int(v>>uint(shift))
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	shift := i>>histSubBits - 1
	low := uint64(i&(1<<histSubBits-1)|1<<histSubBits) << uint(shift)
	return low + (uint64(1)<<uint(shift))/2
}

func (h *latencyHist) record(d time.Duration) {
	i := histIndex(uint64(max(d, 0)))
	if i >= len(h.counts) {
		i = len(h.counts) - 1
	}
	h.counts[i]++
	h.count++
}

func (h *latencyHist) merge(o *latencyHist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
}

// quantile returns the q-quantile by nearest rank (0 when empty).
func (h *latencyHist) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(q*float64(h.count) + 0.9999999)
	rank = min(max(rank, 1), h.count)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}

// TestLatencyHist checks the histogram's quantiles against exact ones on
// spread-out durations: within its 1/64 bucket width.
func TestLatencyHist(t *testing.T) {
	var h latencyHist
	var exact []time.Duration
	for i := range 100000 {
		// 20 ns to ~1 s, log-spread, deterministic.
		d := time.Duration(20 * (1 + uint64(i)*uint64(i)%50000000))
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := int(math.Ceil(q*float64(len(exact)))) - 1
		want, got := exact[rank], h.quantile(q)
		if diff := math.Abs(float64(got-want)) / float64(want); diff > 1.0/64 {
			t.Errorf("q%.3f: got %v, want %v (off by %.2f%%)", q, got, want, diff*100)
		}
	}
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 + 12345} {
		i := histIndex(v)
		if mid := histValue(i); histIndex(mid) != i {
			t.Errorf("value %d: bucket %d, its middle %d falls in bucket %d", v, i, mid, histIndex(mid))
		}
	}
	var empty latencyHist
	if empty.quantile(0.5) != 0 {
		t.Error("an empty histogram has no quantile")
	}
}

// TestRawConn runs the load generator's connection against a real net/http
// server: the request arrives as built (headers, body, a fresh
// Idempotency-Key each time), answers of any size are read in step, and a
// non-200 answer or a chunked one is an error.
func TestRawConn(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]bool{}
	big := bytes.Repeat([]byte("b"), 40<<10) // larger than the reader's buffer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		dup := keys[r.Header.Get("Idempotency-Key")]
		keys[r.Header.Get("Idempotency-Key")] = true
		mu.Unlock()
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/p" || r.Header.Get("X-Tags") != "A,B" || string(body) != "hello" || dup:
			w.WriteHeader(http.StatusTeapot)
			fmt.Fprintf(w, "unexpected %s %s %v %q dup=%v", r.Method, r.URL.Path, r.Header, body, dup)
		case r.URL.Query().Get("big") != "":
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write(big)
		default:
			_, _ = w.Write([]byte(`{"status":"persisted"}`))
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var checked atomic.Int64
	req := &rawRequest{Method: http.MethodPost, Path: "/p", Headers: []string{"X-Tags: A,B"}, Body: []byte("hello"),
		SeqHeader: "Idempotency-Key", Check: func(b []byte) error {
			checked.Add(1)
			if !bytes.Equal(b, []byte(`{"status":"persisted"}`)) {
				return fmt.Errorf("body %q", b)
			}
			return nil
		}}
	c, err := newRawConn(addr, req, "n0", 7)
	require.NoError(t, err)
	defer c.conn.Close()
	for range 50 {
		require.NoError(t, c.do())
	}
	require.EqualValues(t, 50, checked.Load())
	require.Len(t, keys, 50)
	require.True(t, keys["n0-007-000000000050"], "keys: %v", keys)

	req.Path, req.Check = "/p?big=1", nil
	c2, err := newRawConn(addr, req, "n1", 0)
	require.NoError(t, err)
	defer c2.conn.Close()
	for range 3 {
		require.NoError(t, c2.do()) // in step: the 40 KiB body was consumed
	}

	req.Path = "/other"
	c3, err := newRawConn(addr, req, "n2", 0)
	require.NoError(t, err)
	defer c3.conn.Close()
	require.ErrorContains(t, c3.do(), "status 418: unexpected POST /other")

	_, _, err = readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")))
	require.ErrorIs(t, err, errNoLength)
	_, _, err = readResponse(bufio.NewReader(strings.NewReader("SMTP ready\r\n")))
	require.ErrorContains(t, err, "bad status line")
}
