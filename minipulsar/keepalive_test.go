package minipulsar

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// startKeepAlive starts a broker whose keep-alive checks run on a fake
// clock, so the test decides when each one happens.
func startKeepAlive(t *testing.T) (*Server, *FakeClock) {
	t.Helper()
	s := NewServer(Options{})
	fc := NewFakeClock(time.Unix(1_700_000_000, 0))
	s.keepAliveClock = fc
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, fc
}

// sync makes sure the broker has read everything rc sent: it answers a
// client PING only after handling the frames before it.
func (rc *rawConn) sync() {
	rc.t.Helper()
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PING.Enum(), Ping: &pb.CommandPing{}})
	rc.expect(pb.BaseCommand_PONG, 5*time.Second)
}

func (rc *rawConn) expectClosed(d time.Duration) {
	rc.t.Helper()
	deadline := time.Now().Add(d)
	for {
		_, err := rc.tryRead(time.Until(deadline))
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			return
		case errors.As(err, &ne) && ne.Timeout():
			rc.t.Fatalf("connection still open after %s", d)
		default:
			return // reset by peer
		}
	}
}

// TestKeepAliveRawClient: a client that never pings on its own but answers
// the broker's PINGs stays connected however long it is otherwise silent;
// once it stops answering, the next check closes it (Pulsar's rule: one
// unanswered PING, so between one and two intervals of silence).
func TestKeepAliveRawClient(t *testing.T) {
	s, fc := startKeepAlive(t)
	rc := dialRaw(t, s)
	for i := range 10 { // ten intervals, five minutes of silence but PONGs
		fc.Advance(30 * time.Second)
		f := rc.read(5 * time.Second)
		if f.cmd.GetType() != pb.BaseCommand_PING {
			t.Fatalf("check %d: got %s, want PING", i, f.cmd.GetType())
		}
		rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
		rc.sync()
	}
	if f := rc.producer("alive", 1, 1, pb.ProducerAccessMode_Shared); f.cmd.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("connection unusable after ten keep-alive rounds: %v", f.cmd)
	}
	// No more answers: the PING goes out, and the check after it closes.
	fc.Advance(30 * time.Second)
	if f := rc.read(5 * time.Second); f.cmd.GetType() != pb.BaseCommand_PING {
		t.Fatalf("got %s, want PING", f.cmd.GetType())
	}
	fc.Advance(29 * time.Second)
	if _, err := rc.tryRead(200 * time.Millisecond); err == nil {
		t.Fatal("a frame before the next check")
	}
	fc.Advance(time.Second)
	rc.expectClosed(5 * time.Second)
}

// TestKeepAliveAnyFrameCounts: any frame, not only PONG, answers a PING.
func TestKeepAliveAnyFrameCounts(t *testing.T) {
	s, fc := startKeepAlive(t)
	rc := dialRaw(t, s)
	for range 3 {
		fc.Advance(30 * time.Second)
		rc.sync() // reads the broker's PING on the way, answers it, pings
	}
	rc.producer("busy", 1, 1, pb.ProducerAccessMode_Shared)
}

// TestKeepAliveHandshakeTimeout: a connection that has not sent CONNECT by
// the first check is closed.
func TestKeepAliveHandshakeTimeout(t *testing.T) {
	s, fc := startKeepAlive(t)
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for s.accepted.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	fc.Advance(30 * time.Second)
	rc := &rawConn{t: t, nc: nc, fr: &frameReader{r: nc, maxSize: DefaultMaxMessageSize}}
	rc.expectClosed(5 * time.Second)
}

// TestKeepAliveRealClient: pulsar-client-go (which answers PINGs, and whose
// own pings are left at its 30 s default) keeps one connection through
// many broker keep-alive rounds on a short real interval.
func TestKeepAliveRealClient(t *testing.T) {
	s := RunOptionsT(t, Options{KeepAlive: 100 * time.Millisecond})
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: s.ServiceURL(), OperationTimeout: 10 * time.Second, Logger: plog.DefaultNopLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: "ka"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 6 {
		time.Sleep(250 * time.Millisecond) // two or three broker checks per pause
		if _, err := p.Send(ctx, &pulsar.ProducerMessage{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted: the client's connection was dropped by keep-alive", n)
	}
}
