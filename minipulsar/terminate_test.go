package minipulsar

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// TestTerminationEndOfTopic: after termination a raw consumer (the Go
// client drops the command) gets REACHED_END_OF_TOPIC once it has
// acknowledged everything, and not before; a producer is closed and a new
// one refused with TopicTerminatedError.
func TestTerminationEndOfTopic(t *testing.T) {
	s := RunT(t)
	rc := dialRaw(t, s)
	if f := rc.producer("term", 1, 1, pb.ProducerAccessMode_Shared); f.cmd.GetType() != pb.BaseCommand_PRODUCER_SUCCESS {
		t.Fatalf("producer: %v", f.cmd)
	}
	for i := range 2 {
		md := &pb.MessageMetadata{ProducerName: proto.String(rc.lastProducerName), SequenceId: proto.Uint64(uint64(i)), PublishTime: proto.Uint64(1)}
		payload, err := encodePayload(md, []byte("m"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := appendFrame(nil, &pb.BaseCommand{Type: pb.BaseCommand_SEND.Enum(), Send: &pb.CommandSend{
			ProducerId: proto.Uint64(1), SequenceId: proto.Uint64(uint64(i))}}, payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.nc.Write(b); err != nil {
			t.Fatal(err)
		}
		rc.expect(pb.BaseCommand_SEND_RECEIPT, 5*time.Second)
	}
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_SUBSCRIBE.Enum(), Subscribe: &pb.CommandSubscribe{
		Topic: proto.String("term"), Subscription: proto.String("s"), ConsumerId: proto.Uint64(5), RequestId: proto.Uint64(2),
		SubType: pb.CommandSubscribe_Exclusive.Enum(), InitialPosition: pb.CommandSubscribe_Earliest.Enum()}})
	rc.expect(pb.BaseCommand_SUCCESS, 5*time.Second)
	rc.send(&pb.BaseCommand{Type: pb.BaseCommand_FLOW.Enum(), Flow: &pb.CommandFlow{ConsumerId: proto.Uint64(5), MessagePermits: proto.Uint32(10)}})
	var ids []*pb.MessageIdData
	for range 2 {
		ids = append(ids, rc.expect(pb.BaseCommand_MESSAGE, 5*time.Second).cmd.GetMessage().GetMessageId())
	}

	ledger, entry, err := s.TerminateTopic("term")
	if err != nil || ledger != ids[1].GetLedgerId() || entry != int64(ids[1].GetEntryId()) {
		t.Fatalf("terminate: %d:%d %v, last sent %v", ledger, entry, err, ids[1])
	}
	if f := rc.expect(pb.BaseCommand_CLOSE_PRODUCER, 5*time.Second); f.cmd.GetCloseProducer().GetProducerId() != 1 {
		t.Fatalf("close producer: %v", f.cmd)
	}
	if f := rc.producer("term", 2, 3, pb.ProducerAccessMode_Shared); f.cmd.GetError().GetError() != pb.ServerError_TopicTerminatedError {
		t.Fatalf("producer after termination: %v", f.cmd)
	}
	// One message still unacknowledged: no end of topic yet.
	ack := func(mid *pb.MessageIdData) {
		rc.send(&pb.BaseCommand{Type: pb.BaseCommand_ACK.Enum(), Ack: &pb.CommandAck{ConsumerId: proto.Uint64(5),
			AckType: pb.CommandAck_Individual.Enum(), MessageId: []*pb.MessageIdData{mid}}})
	}
	ack(ids[0])
	rc.sync()
	if f, err := rc.tryRead(200 * time.Millisecond); err == nil {
		t.Fatalf("before the last ack: %v", f.cmd.GetType())
	}
	ack(ids[1])
	f := rc.expect(pb.BaseCommand_REACHED_END_OF_TOPIC, 5*time.Second)
	if id := reachedEndConsumer(t, f.cmd); id != 5 {
		t.Fatalf("REACHED_END_OF_TOPIC for consumer %d", id)
	}
}

// reachedEndConsumer decodes BaseCommand field 27's consumer_id.
func reachedEndConsumer(t *testing.T, cmd *pb.BaseCommand) uint64 {
	t.Helper()
	b := cmd.ProtoReflect().GetUnknown()
	num, typ, n := protowire.ConsumeTag(b)
	if num != 27 || typ != protowire.BytesType || n < 0 {
		t.Fatalf("unknown fields %x", b)
	}
	inner, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		t.Fatalf("field 27 %x", b)
	}
	num, typ, n = protowire.ConsumeTag(inner)
	if num != 1 || typ != protowire.VarintType {
		t.Fatalf("inner %x", inner)
	}
	v, _ := protowire.ConsumeVarint(inner[n:])
	return v
}
