// Command pscload is an open-loop load generator for the sidecar's produce
// API. Requests are due at fixed instants (a constant rate or a step
// profile), whatever the answers do, and latency runs from each request's
// intended instant, so a stall shows in every request it delayed (no
// coordinated omission; see Gil Tene, "How NOT to measure latency", and
// wrk2). It prints a summary per step, optionally JSON and a PNG plot, and
// says loudly when it could not keep its own schedule. See docs/pscload.md.
//
//	pscload --rate 2000 --duration 30s --keys 1
//	pscload --capacity 8000 --steps 10%:30s,80%:30s --keys 1 --plot run.png
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit codes.
const (
	exitOK          = 0
	exitFailed      = 1 // the run could not start or its output could not be written
	exitUsage       = 2
	exitOffSchedule = 3 // the run finished but did not keep its schedule: not a valid measurement
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses args, runs, and writes the outputs; it returns the exit code.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, out, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pscload:", err)
		return exitUsage
	}
	rep, err := run(ctx, o)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pscload:", err)
		return exitFailed
	}
	if out.json == "-" {
		err = writeJSON(stdout, rep)
	} else {
		err = writeText(stdout, rep)
	}
	if err == nil && out.json != "" && out.json != "-" {
		err = saveFile(out.json, rep, writeJSON)
	}
	if err == nil && out.plot != "" {
		err = saveFile(out.plot, rep, writePlot)
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pscload:", err)
		return exitFailed
	}
	if !rep.Schedule.OnSchedule {
		return exitOffSchedule
	}
	return exitOK
}

// outputs says where the report goes besides the text summary.
type outputs struct {
	json string // a file, or "-" for stdout instead of the text summary
	plot string
}

func saveFile(path string, rep *Report, write func(io.Writer, *Report) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f, rep); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

const usageHead = `pscload: open-loop load for the pulsar-sidecar produce API.

Requests are due at fixed instants (--rate, or --steps), whatever the answers
do; latency runs from each request's intended instant. Give either --rate with
--duration, or --steps. Exit status: 0 done, 2 bad flags, 1 failed,
3 done but the schedule was not kept (the numbers are not a valid measurement).

Examples:
  pscload --rate 2000 --duration 30s --keys 1
  pscload --capacity 8000 --steps 10%:30s,80%:30s --keys 1 --plot run.png
  pscload --steps 1000:30s,8000:30s --form json --batch 10 --json - > run.json

Flags:
`

func parseFlags(args []string, stderr io.Writer) (options, outputs, error) {
	fs := flag.NewFlagSet("pscload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	var (
		o                       options
		out                     outputs
		topics, stepsText, tags string
		tagsPerMsg              string
		rate, capacity          float64
		duration                time.Duration
	)
	fs.StringVar(&o.target, "target", "http://127.0.0.1:8088", "sidecar base URL")
	fs.StringVar(&topics, "topic", "public/default/pscload", "topic(s) as tenant/namespace/topic, comma-separated; requests go round-robin")
	fs.Float64Var(&rate, "rate", 0, "constant arrival rate, requests/s (with --duration)")
	fs.DurationVar(&duration, "duration", 20*time.Second, "run length with --rate")
	fs.StringVar(&stepsText, "steps", "", "step profile RATE:DURATION,...; RATE absolute (1000:30s) or percent of --capacity (80%:30s); 0 is an idle step")
	fs.Float64Var(&capacity, "capacity", 0, "requests/s that percent steps refer to (measure it first)")
	fs.IntVar(&o.connections, "connections", 64, "keep-alive connections = most requests in flight at once")
	fs.IntVar(&o.payloadSize, "payload-size", 1024, "payload bytes per message")
	fs.StringVar(&o.form, "form", "raw", "raw (body = payload, headers) or json (the batch form)")
	fs.IntVar(&o.batch, "batch", 1, "messages per request with --form json")
	fs.Float64Var(&o.keyFraction, "keys", 0, "fraction 0..1 of requests with an Idempotency-Key, unique per request")
	fs.Float64Var(&o.retryFraction, "retries", 0, "fraction 0..1 of requests that repeat an earlier answered keyed request (same key, same payload); the sidecar should answer duplicate")
	fs.StringVar(&tags, "tag-set", "PAY_1001,PAY_1002,CHARGE,REFUND", "tags to draw from, comma-separated")
	fs.StringVar(&tagsPerMsg, "tags-per-msg", "1", "tags per message: N or MIN-MAX (uniform), distinct, from --tag-set")
	fs.IntVar(&o.msgKeys, "msg-keys", 1000, "distinct message keys (X-Key) to draw from; 0 sends none")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout (from the actual send)")
	fs.StringVar(&o.token, "token", "", "app bearer token (default $PSC_TOKEN, which keeps it out of the process list)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed for the request mix (keys, tags, retries)")
	fs.StringVar(&o.keyPrefix, "key-prefix", "", "idempotency key prefix (default pscload-<random>, so runs do not collide)")
	fs.DurationVar(&o.maxLag, "max-lag", time.Millisecond, "a request sent later than this after its instant is late; more than 1% late and the run is not valid")
	fs.StringVar(&out.json, "json", "", "also write the report as JSON to this file; - writes it on stdout instead of the text summary")
	fs.StringVar(&out.plot, "plot", "", "write a PNG of latency (p50, p99 per second) and throughput over time to this file")
	if err := fs.Parse(args); err != nil {
		return o, out, err
	}
	if fs.NArg() > 0 {
		return o, out, fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	switch {
	case stepsText != "" && rate > 0:
		return o, out, errors.New("give --rate or --steps, not both")
	case stepsText != "" && set["duration"]:
		return o, out, errors.New("--duration goes with --rate; --steps gives each step its own duration")
	case stepsText != "":
		var steps []step
		if steps, err = parseSteps(stepsText); err != nil {
			return o, out, fmt.Errorf("--steps %q: %w", stepsText, err)
		}
		if o.steps, err = resolve(steps, capacity); err != nil {
			return o, out, err
		}
	case rate > 0:
		if o.steps, err = parseSteps(fmt.Sprintf("%g:%s", rate, duration)); err != nil {
			return o, out, fmt.Errorf("--rate %g --duration %s: %w", rate, duration, err)
		}
	default:
		return o, out, errors.New("give --rate (with --duration) or --steps; see --help")
	}
	if o.tagsMin, o.tagsMax, err = parseTagRange(tagsPerMsg); err != nil {
		return o, out, err
	}
	o.topics = splitList(topics)
	o.tagSet = splitList(tags)
	u, err := url.Parse(o.target)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return o, out, fmt.Errorf("--target %q: want a URL such as http://127.0.0.1:8088", o.target)
	case len(o.topics) == 0:
		return o, out, errors.New("--topic: give at least one tenant/namespace/topic")
	case o.connections < 1 || o.connections > 100_000:
		return o, out, errors.New("--connections: want 1..100000")
	case o.payloadSize < 0 || o.payloadSize > 64<<20:
		return o, out, errors.New("--payload-size: want 0..67108864 bytes")
	case o.form != "raw" && o.form != "json":
		return o, out, fmt.Errorf("--form %q: want raw or json", o.form)
	case o.batch < 1 || o.batch > 10_000 || (o.batch > 1 && o.form != "json"):
		return o, out, errors.New("--batch: want 1..10000, and more than 1 only with --form json")
	case !(o.keyFraction >= 0 && o.keyFraction <= 1), !(o.retryFraction >= 0 && o.retryFraction <= 1):
		return o, out, errors.New("--keys and --retries: want fractions between 0 and 1")
	case o.retryFraction > 0 && o.keyFraction == 0:
		return o, out, errors.New("--retries repeats keyed requests: give --keys above 0 too")
	case o.tagsMax > 0 && len(o.tagSet) == 0:
		return o, out, errors.New("--tags-per-msg above 0 needs a --tag-set")
	case o.msgKeys < 0:
		return o, out, errors.New("--msg-keys: want 0 or more")
	case o.timeout <= 0:
		return o, out, errors.New("--timeout: want more than 0")
	case o.maxLag <= 0:
		return o, out, errors.New("--max-lag: want more than 0")
	}
	for _, t := range o.topics {
		if _, err := producePath(t); err != nil {
			return o, out, err
		}
	}
	if o.token == "" {
		o.token = os.Getenv("PSC_TOKEN")
	}
	if o.keyPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
		o.keyPrefix = "pscload-" + hex.EncodeToString(b[:])
	}
	return o, out, nil
}

// splitList splits a comma-separated flag, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
