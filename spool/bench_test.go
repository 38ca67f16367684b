package spool

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func benchRecord() Record {
	return Record{
		UID:        "0195c1d2-7a4e-7c3b-9f10-3e5d2a1b4c6d",
		App:        "billing-php",
		Topic:      "persistent://pay/settle/purchase-records",
		Key:        "order-118273645",
		Tags:       []string{"PAY_1001", "CN"},
		Properties: map[string]string{"currency": "CNY", "attempt": "1"},
		EventTime:  time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Payload:    []byte(strings.Repeat("x", 256)),
	}
}

// BenchmarkAppend measures durable appends (real write + fsync) from 1, 16
// and 64 concurrent appenders, with group commit and, as the baseline in the
// same run, with one fsync per record (MaxBatchRecords = 1).
func BenchmarkAppend(b *testing.B) {
	modes := []struct {
		name     string
		maxBatch int
	}{
		{"group-commit", 0},
		{"fsync-per-record", 1},
	}
	for _, m := range modes {
		for _, appenders := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/appenders=%d", m.name, appenders), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{
					MaxBatchRecords:    m.maxBatch,
					MaxBytes:           8 << 30,
					CheckpointInterval: -1,
					Logger:             discardLogger,
				})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				rec := benchRecord()
				ctx := context.Background()
				work := make(chan struct{})
				var wg sync.WaitGroup
				for range appenders {
					wg.Go(func() {
						for range work {
							if _, err := s.Append(ctx, rec); err != nil {
								b.Error(err)
							}
						}
					})
				}
				before := s.Stats()
				start := time.Now()
				for b.Loop() {
					work <- struct{}{} // blocks until an appender is free
				}
				close(work)
				wg.Wait()
				elapsed := time.Since(start).Seconds()
				after := s.Stats()
				records := float64(after.Records - before.Records)
				fsyncs := float64(after.Fsyncs - before.Fsyncs)
				b.ReportMetric(records/elapsed, "msgs/s")
				b.ReportMetric(fsyncs/elapsed, "fsyncs/s")
				b.ReportMetric(records/fsyncs, "records/fsync")
			})
		}
	}
}

func BenchmarkRecordMarshal(b *testing.B) {
	rec := benchRecord()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = rec.AppendBinary(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecordUnmarshal(b *testing.B) {
	data, err := benchRecord().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var r Record
		if err := r.UnmarshalBinary(data); err != nil {
			b.Fatal(err)
		}
	}
}
