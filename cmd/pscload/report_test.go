package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syntheticReport builds a report from outcomes at fixed instants, so its
// text and JSON are the same on every machine.
func syntheticReport(t *testing.T) *Report {
	t.Helper()
	steps := []step{{Rate: 10, Duration: 2 * time.Second}, {Rate: 20, Duration: time.Second}}
	sched := newSchedule(steps)
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	o := testOptions("http://127.0.0.1:8088", steps...)
	o.keyFraction, o.retryFraction = 0.5, 0.1
	r := &runner{opts: o, sched: sched, start: start, rec: newRecorder(start, sched)}
	for i := range sched.total() {
		k, off := sched.slot(i)
		intended := start.Add(off)
		lat := time.Duration(1+i%5) * time.Millisecond
		if i == 7 {
			lat = 250 * time.Millisecond
		}
		out := outcome{
			slot: i, step: k, intended: intended, picked: intended, sent: intended.Add(100 * time.Microsecond),
			done: intended.Add(lat), status: 200, keyed: i%2 == 0, retry: i%10 == 4,
		}
		switch {
		case i%13 == 0:
			out.status, out.errKey = 409, "409 IDEMPOTENCY_IN_PROGRESS"
		case i == 20:
			out.status, out.errKey = 0, "timeout"
		default:
			out.answer = answerCounts{persisted: 1}
			if out.retry {
				out.answer.duplicate = 1
			}
		}
		r.rec.record(out)
	}
	hiccups := newHist(histSig)
	for i := range 100 {
		record(hiccups, time.Duration(50+i)*time.Microsecond, new(int64))
	}
	return r.report(false, hiccups)
}

// TestGolden compares the text summary and the JSON of a fixed report with
// testdata; PSCLOAD_GOLDEN=1 rewrites them.
func TestGolden(t *testing.T) {
	rep := syntheticReport(t)
	var text, js bytes.Buffer
	if err := writeText(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		file string
		got  []byte
	}{{"summary.txt", text.Bytes()}, {"report.json", js.Bytes()}} {
		path := filepath.Join("testdata", g.file)
		if os.Getenv("PSCLOAD_GOLDEN") == "1" {
			if err := os.WriteFile(path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (PSCLOAD_GOLDEN=1 writes it)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs (PSCLOAD_GOLDEN=1 rewrites it); got:\n%s", path, g.got)
		}
	}
}

// TestReportNumbers checks the synthetic report's figures against what
// syntheticReport recorded, independently of the golden files.
func TestReportNumbers(t *testing.T) {
	rep := syntheticReport(t)
	tot := rep.Total
	// 40 slots; 0, 13, 26, 39 are 409; slot 20 timed out.
	if tot.Planned != 40 || tot.Requests != 40 || tot.OK != 35 || tot.ErrorCount != 5 ||
		tot.Errors["409 IDEMPOTENCY_IN_PROGRESS"] != 4 || tot.Errors["timeout"] != 1 {
		t.Fatalf("total %+v", tot)
	}
	if tot.RetriesSent != 4 || tot.RetriesDuplicate != 4 || tot.RetriesProduced != 0 || tot.Answers.Duplicate != 4 || tot.Answers.Persisted != 35 {
		t.Fatalf("retries %d, duplicates %d, persisted %d", tot.RetriesSent, tot.Answers.Duplicate, tot.Answers.Persisted)
	}
	if len(rep.Steps) != 2 || rep.Steps[0].Requests != 20 || rep.Steps[1].Requests != 20 ||
		rep.Steps[0].IntendedRate != 10 || rep.Steps[1].IntendedRate != 20 {
		t.Fatalf("steps %+v", rep.Steps)
	}
	if tot.Latency.Max < 249 || tot.Latency.Max > 251 || tot.Latency.P50 < 2.9 || tot.Latency.P50 > 3.1 {
		t.Fatalf("latency %+v", tot.Latency)
	}
	if !rep.Schedule.OnSchedule || len(rep.Schedule.Reasons) != 0 {
		t.Fatalf("schedule %+v", rep.Schedule)
	}
	if len(rep.Timeline) != 3 || rep.Timeline[0].Intended != 10 || rep.Timeline[2].Intended != 20 || rep.Timeline[0].P99 < 249 {
		t.Fatalf("timeline %+v", rep.Timeline)
	}
}

func TestPlotDecodes(t *testing.T) {
	for name, rep := range map[string]*Report{"run": syntheticReport(t), "empty": {Target: "http://x"}} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := writePlot(&buf, rep); err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() < 800 || b.Dy() < 500 {
				t.Fatalf("image %v", b)
			}
			if name == "run" && !hasColour(img, func(r, g, b uint32) bool { return r > 0xa000 && g < 0x4000 && b < 0x4000 }) {
				t.Fatal("no red (p99, errors) line drawn")
			}
		})
	}
}

func hasColour(img image.Image, match func(r, g, b uint32) bool) bool {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if match(r, g, bl) {
				return true
			}
		}
	}
	return false
}

// TestCLI runs the command as a user would: flags in, JSON and a PNG out.
func TestCLI(t *testing.T) {
	s := newSink(t, nil)
	plotPath := filepath.Join(t.TempDir(), "run.png")
	var stdout, stderr bytes.Buffer
	code := cli(context.Background(), []string{
		"--target", s.srv.URL, "--rate", "100", "--duration", "300ms", "--keys", "1", "--retries", "0.2",
		"--connections", "4", "--payload-size", "64", "--json", "-", "--plot", plotPath,
	}, &stdout, &stderr)
	if code != exitOK && code != exitOffSchedule {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Total.Requests != 30 || rep.Total.OK != 30 || (code == exitOffSchedule) == rep.Schedule.OnSchedule {
		t.Fatalf("exit %d, report total %+v schedule %+v", code, rep.Total, rep.Schedule)
	}
	f, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("plot: %v", err)
	}

	// --json FILE keeps the text summary on stdout.
	jsonPath := filepath.Join(t.TempDir(), "run.json")
	stdout.Reset()
	code = cli(context.Background(), []string{"--target", s.srv.URL, "--rate", "100", "--duration", "100ms", "--json", jsonPath}, &stdout, &stderr)
	if code != exitOK && code != exitOffSchedule {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil || rep.Total.Requests != 10 || !strings.HasPrefix(stdout.String(), "pscload -> ") {
		t.Fatalf("json file: %v, %d requests; stdout:\n%s", err, rep.Total.Requests, stdout.String())
	}
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, _, err := parseFlags([]string{"--help"}, &stderr); !errors.Is(err, flag.ErrHelp) || !strings.Contains(stderr.String(), "-steps") {
		t.Fatalf("--help: %v\n%s", err, stderr.String())
	}
	o, _, err := parseFlags([]string{"--capacity", "8000", "--steps", "10%:30s,80%:30s", "--topic", "a/b/c, d/e/f", "--tags-per-msg", "0-2"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.steps) != 2 || o.steps[0].Rate != 800 || o.steps[1].Rate != 6400 || len(o.topics) != 2 || o.tagsMax != 2 ||
		!strings.HasPrefix(o.keyPrefix, "pscload-") {
		t.Fatalf("options %+v", o)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, "give --rate"},
		{[]string{"--rate", "10", "--steps", "5:1s"}, "not both"},
		{[]string{"--steps", "5:1s", "--duration", "10s"}, "--duration goes with --rate"},
		{[]string{"--steps", "5:1s,x:1s"}, "5:6: rate"},
		{[]string{"--steps", "50%:1s"}, "--capacity"},
		{[]string{"--rate", "10", "--target", "127.0.0.1:8088"}, "--target"},
		{[]string{"--rate", "10", "--topic", "a/b"}, "tenant/namespace/topic"},
		{[]string{"--rate", "10", "--retries", "0.1"}, "give --keys"},
		{[]string{"--rate", "10", "--keys", "1.5"}, "fractions"},
		{[]string{"--rate", "10", "--batch", "5"}, "--form json"},
		{[]string{"--rate", "10", "--form", "xml"}, "raw or json"},
		{[]string{"--rate", "10", "--tags-per-msg", "3-1"}, "MIN <= MAX"},
		{[]string{"--rate", "10", "extra"}, "unexpected argument"},
	} {
		if _, _, err := parseFlags(tc.args, &stderr); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
		}
	}
	if code := cli(context.Background(), []string{"--rate", "0"}, &bytes.Buffer{}, &stderr); code != exitUsage {
		t.Errorf("no rate: exit %d, want %d", code, exitUsage)
	}
}
