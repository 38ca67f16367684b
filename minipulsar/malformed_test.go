package minipulsar_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/minipulsar"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// connectFrame is a valid CONNECT: BaseCommand{type=CONNECT, connect{client_version="x"}}.
var connectFrame = func() []byte {
	connect := []byte{0x0a, 0x01, 'x'}                                      // client_version = "x"
	cmd := append([]byte{0x08, 0x02, 0x12, byte(len(connect))}, connect...) // type=2, field 2
	return append(append(u32(uint32(4+len(cmd))), u32(uint32(len(cmd)))...), cmd...)
}()

// TestMalformedInputClosesOnlyThatConnection sends broken frames on raw
// connections while a real client keeps producing and consuming.
func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	logs := &syncBuffer{}
	s := minipulsar.RunOptionsT(t, minipulsar.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	client := newClient(t, s.ServiceURL())
	prod, err := client.CreateProducer(pulsar.ProducerOptions{Topic: "healthy"})
	require.NoError(t, err)
	defer prod.Close()
	cons, err := client.Subscribe(pulsar.ConsumerOptions{Topic: "healthy", SubscriptionName: "s"})
	require.NoError(t, err)
	defer cons.Close()

	// SEND{producer_id=1, sequence_id=1} followed by a payload with a wrong checksum.
	badChecksum := func() []byte {
		send := []byte{0x08, 0x01, 0x10, 0x01}
		cmd := append([]byte{0x08, 0x06, 0x32, byte(len(send))}, send...)
		payload := []byte{0x0e, 0x01, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 'x'}
		return append(append(append(u32(uint32(4+len(cmd)+len(payload))), u32(uint32(len(cmd)))...), cmd...), payload...)
	}()
	cases := []struct {
		name    string
		data    []byte
		logWant string
	}{
		{"oversize frame", u32(64 << 20), "larger than the maximum"},
		{"size smaller than headers", u32(1), "shorter than its headers"},
		{"command size beyond frame", append(u32(8), append(u32(100), 1, 2, 3, 4)...), "shorter than its headers"},
		{"garbage protobuf", append(u32(9), append(u32(5), 0xff, 0xff, 0xff, 0xff, 0xff)...), "command does not decode"},
		{"unknown command type", append(u32(6), append(u32(2), 0x08, 0x7f)...), "command does not decode"},
		{"command before connect", append(u32(6), append(u32(2), 0x08, 0x12)...), "first command must be CONNECT"},
		{"bad checksum", append(append([]byte(nil), connectFrame...), badChecksum...), "checksum mismatch"},
		{"disconnect mid-frame", append(u32(100), 0, 0, 0, 10, 1, 2), "unexpected EOF"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.DialTimeout("tcp", s.Addr(), 2*time.Second)
			require.NoError(t, err)
			_, err = nc.Write(tc.data)
			require.NoError(t, err)
			if tc.name == "disconnect mid-frame" {
				require.NoError(t, nc.Close())
			} else {
				// The broker closes this connection: reading ends (after an
				// optional CONNECTED) with EOF, not a hang.
				require.NoError(t, nc.SetReadDeadline(time.Now().Add(5*time.Second)))
				_, err = io.ReadAll(nc)
				require.NoError(t, err, "broker must close the connection, not leave it hanging")
				_ = nc.Close()
			}
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), tc.logWant) },
				5*time.Second, 10*time.Millisecond, "log should explain the close: %q\n%s", tc.logWant, logs.String())

			// Everyone else is still served.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			want := fmt.Sprintf("after-%d", i)
			_, err = prod.Send(ctx, &pulsar.ProducerMessage{Payload: []byte(want)})
			require.NoError(t, err)
			m, err := cons.Receive(ctx)
			require.NoError(t, err)
			require.Equal(t, want, string(m.Payload()))
			require.NoError(t, cons.Ack(m))
		})
	}
}
