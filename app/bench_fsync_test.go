package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// BenchmarkFsyncBroker is BenchmarkProduce's comparison against a broker
// that, like Pulsar's bookies, acknowledges a send only after its journal
// fsync: minipulsar with a data directory on the real file system
// (group-committed fsync before every receipt, docs/adr/001). In one run,
// on one broker:
//
//   - sidecar: one-message raw-form HTTP requests (1 KiB payload) over
//     keep-alive connections, one per worker, answered after the ack;
//   - direct-send: workers calling producer.Send on one producer with the
//     sidecar pool's batching settings, exactly as in BenchmarkProduce;
//   - nethttp: the bare net/http handler (no broker), for reference;
//   - fsync: one goroutine appending 1 KiB to a file in the same file
//     system and fsyncing it, the storage's own latency.
//
// The produce paths also report the broker's fsyncs per message and
// messages per broker entry. The name avoids "Produce" so that the
// commands documented for BenchmarkProduce do not pick it up.
//
//	go test ./app -run '^$' -bench 'FsyncBroker' -benchtime 3s -count 3
func BenchmarkFsyncBroker(b *testing.B) {
	dataDir := b.TempDir()
	broker, _, cfg, a := startProduceBench(b, minipulsar.Options{DataDir: dataDir})
	payload := bytes.Repeat([]byte("x"), 1024)

	client := nativeClient(b, broker.ServiceURL())
	producer, err := client.CreateProducer(pulsar.ProducerOptions{
		Topic:                   "persistent://bench/fsync/direct",
		BatchingMaxPublishDelay: cfg.Producer.BatchingMaxPublishDelay,
		BatchingMaxMessages:     uint(cfg.Producer.BatchingMaxMessages),
		BatchingMaxSize:         uint(cfg.Producer.BatchingMaxBytes),
		MaxPendingMessages:      cfg.Producer.MaxPendingMessages,
	})
	require.NoError(b, err)
	b.Cleanup(producer.Close)

	bare := bareHTTP(b)
	// storage wraps a produce run on topic with the broker's fsyncs per
	// message and messages per entry (from the admin API's internal stats).
	storage := func(b *testing.B, topic string, run func()) {
		f0, e0 := broker.Fsyncs(), entriesAdded(b, broker, topic)
		run()
		f1, e1 := broker.Fsyncs(), entriesAdded(b, broker, topic)
		b.ReportMetric(float64(f1-f0)/float64(b.N), "fsyncs/msg")
		if e1 > e0 {
			b.ReportMetric(float64(b.N)/float64(e1-e0), "msgs/entry")
		}
	}
	const conc = 64
	b.Run(fmt.Sprintf("sidecar/conc=%d", conc), func(b *testing.B) {
		storage(b, "bench/fsync/sidecar", func() {
			rawHTTPLoad(b, conc, a.Addr(), &rawRequest{Method: http.MethodPost, Path: "/v1/topics/bench/fsync/sidecar/messages",
				Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, Check: persistedAnswer})
		})
	})
	b.Run(fmt.Sprintf("direct-send/conc=%d", conc), func(b *testing.B) {
		storage(b, "bench/fsync/direct", func() {
			runWorkers(b, conc, func(int) (func() error, func(), error) {
				return func() error {
					_, err := producer.Send(context.Background(), &pulsar.ProducerMessage{Payload: payload})
					return err
				}, nil, nil
			})
		})
	})
	b.Run(fmt.Sprintf("nethttp/conc=%d", conc), func(b *testing.B) {
		rawHTTPLoad(b, conc, strings.TrimSuffix(strings.TrimPrefix(bare, "http://"), "/"), &rawRequest{Method: http.MethodPost, Path: "/",
			Headers: []string{"Content-Type: application/octet-stream"}, Body: payload, Check: persistedAnswer})
	})
	b.Run("fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(dataDir, "fsync-probe"))
		require.NoError(b, err)
		defer f.Close()
		for b.Loop() {
			if _, err := f.Write(payload); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// entriesAdded is a topic's entriesAddedCounter from the broker's admin
// API ("tenant/ns/topic"); 0 while the topic does not exist.
func entriesAdded(b *testing.B, broker *minipulsar.Server, topic string) int64 {
	res, err := http.Get(broker.AdminURL() + "/admin/v2/persistent/" + topic + "/internalStats")
	require.NoError(b, err)
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return 0
	}
	require.Equal(b, http.StatusOK, res.StatusCode)
	var st struct {
		EntriesAddedCounter int64 `json:"entriesAddedCounter"`
	}
	require.NoError(b, json.NewDecoder(res.Body).Decode(&st))
	return st.EntriesAddedCounter
}
