package minipulsar

import (
	"bufio"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// rawConn is a hand-driven client connection for behaviour the real client
// cannot show or does not offer (it never pings on its own, it speaks
// access modes pulsar-client-go lacks, it sees commands the client drops).
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *frameReader

	lastProducerName string // from the last PRODUCER_SUCCESS
}

// dialRaw connects and completes the CONNECT handshake.
func dialRaw(t *testing.T, s *Server) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	rc := &rawConn{t: t, nc: nc, fr: &frameReader{r: bufio.NewReader(nc), maxSize: DefaultMaxMessageSize + frameOverhead}}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_CONNECT.Enum(), Connect: &pb.CommandConnect{
		ClientVersion: proto.String("raw-test-client"), ProtocolVersion: proto.Int32(20)}})
	if f := rc.read(5 * time.Second); f.cmd.GetType() != pb.BaseCommand_CONNECTED {
		t.Fatalf("handshake: got %s", f.cmd.GetType())
	}
	return rc
}

func (rc *rawConn) send(cmd *pb.BaseCommand) {
	rc.t.Helper()
	b, err := appendFrame(nil, cmd, nil)
	if err != nil {
		rc.t.Fatalf("encode %s: %v", cmd.GetType(), err)
	}
	if _, err := rc.nc.Write(b); err != nil {
		rc.t.Fatalf("write %s: %v", cmd.GetType(), err)
	}
}

// read returns the next frame, failing the test after d.
func (rc *rawConn) read(d time.Duration) frame {
	rc.t.Helper()
	f, err := rc.tryRead(d)
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	return f
}

func (rc *rawConn) tryRead(d time.Duration) (frame, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(d))
	return rc.fr.readFrame()
}

// expect reads frames until one of type typ, answering PINGs on the way.
func (rc *rawConn) expect(typ pb.BaseCommand_Type, d time.Duration) frame {
	rc.t.Helper()
	deadline := time.Now().Add(d)
	for {
		f := rc.read(time.Until(deadline))
		if f.cmd.GetType() == typ {
			return f
		}
		if f.cmd.GetType() == pb.BaseCommand_PING {
			rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
		}
	}
}

// producer registers a producer and returns the broker's first answer.
func (rc *rawConn) producer(topic string, id, reqID uint64, mode pb.ProducerAccessMode) frame {
	rc.t.Helper()
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PRODUCER.Enum(), Producer: &pb.CommandProducer{
		Topic: proto.String(topic), ProducerId: proto.Uint64(id), RequestId: proto.Uint64(reqID),
		ProducerAccessMode: mode.Enum()}})
	for {
		f := rc.read(5 * time.Second)
		switch f.cmd.GetType() {
		case pb.BaseCommand_PRODUCER_SUCCESS:
			rc.lastProducerName = f.cmd.GetProducerSuccess().GetProducerName()
			return f
		case pb.BaseCommand_ERROR:
			return f
		case pb.BaseCommand_PING:
			rc.send(&pb.BaseCommand{Type: pb.BaseCommand_PONG.Enum(), Pong: &pb.CommandPong{}})
		}
	}
}
