package minipulsar

import (
	"testing"
	"time"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// TestAccessModeMatrix checks the answer to a second producer for every
// pair of access modes, as Pulsar's AbstractTopic gives it, over raw
// connections (pulsar-client-go v0.19.0 cannot ask for ExclusiveWithFencing).
func TestAccessModeMatrix(t *testing.T) {
	const (
		shared  = pb.ProducerAccessMode_Shared
		excl    = pb.ProducerAccessMode_Exclusive
		fencing = pb.ProducerAccessMode_ExclusiveWithFencing
		wait    = pb.ProducerAccessMode_WaitForExclusive
	)
	// want: "ok", "waits", or the ServerError name; fenced: the first
	// producer gets CLOSE_PRODUCER.
	cases := []struct {
		first, second pb.ProducerAccessMode
		want          string
		fenced        bool
	}{
		{shared, shared, "ok", false},
		{shared, excl, "ProducerFenced", false},
		{shared, fencing, "ok", true},
		{shared, wait, "waits", false},
		{excl, shared, "ProducerBusy", false},
		{excl, excl, "ProducerFenced", false},
		{excl, fencing, "ok", true},
		{excl, wait, "waits", false},
		{fencing, shared, "ProducerBusy", false},
		{fencing, excl, "ProducerFenced", false},
		{fencing, fencing, "ok", true},
		{wait, shared, "ProducerBusy", false},
		{wait, excl, "ProducerFenced", false},
		{wait, wait, "waits", false},
	}
	for _, tc := range cases {
		t.Run(tc.first.String()+"_then_"+tc.second.String(), func(t *testing.T) {
			s := RunT(t)
			a, b := dialRaw(t, s), dialRaw(t, s)
			if f := a.producer("m", 1, 1, tc.first); f.cmd.GetType() != pb.BaseCommand_PRODUCER_SUCCESS || !f.cmd.GetProducerSuccess().GetProducerReady() {
				t.Fatalf("first producer: %v", f.cmd)
			}
			f := b.producer("m", 1, 1, tc.second)
			got := "ok"
			switch {
			case f.cmd.GetType() == pb.BaseCommand_ERROR:
				got = f.cmd.GetError().GetError().String()
			case !f.cmd.GetProducerSuccess().GetProducerReady():
				got = "waits"
			}
			if got != tc.want {
				t.Fatalf("second producer: got %s, want %s (%v)", got, tc.want, f.cmd)
			}
			if tc.fenced {
				if c := a.expect(pb.BaseCommand_CLOSE_PRODUCER, 5*time.Second); c.cmd.GetCloseProducer().GetProducerId() != 1 {
					t.Fatalf("fenced producer: %v", c.cmd)
				}
			}
		})
	}
}

// TestWaitingProducerPromotedAndFenced: a waiting producer gets its ready
// PRODUCER_SUCCESS (same request id) when the exclusive producer closes;
// an ExclusiveWithFencing producer fails waiting ones with ProducerFenced.
func TestWaitingProducerPromotedAndFenced(t *testing.T) {
	s := RunT(t)
	a, b, c := dialRaw(t, s), dialRaw(t, s), dialRaw(t, s)
	a.producer("w", 1, 1, pb.ProducerAccessMode_Exclusive)
	if f := b.producer("w", 7, 42, pb.ProducerAccessMode_WaitForExclusive); f.cmd.GetProducerSuccess().GetProducerReady() {
		t.Fatalf("waiting producer answered ready: %v", f.cmd)
	}
	a.send(&pb.BaseCommand{Type: pb.BaseCommand_CLOSE_PRODUCER.Enum(), CloseProducer: &pb.CommandCloseProducer{ProducerId: u64(1), RequestId: u64(2)}})
	f := b.expect(pb.BaseCommand_PRODUCER_SUCCESS, 5*time.Second)
	if ps := f.cmd.GetProducerSuccess(); !ps.GetProducerReady() || ps.GetRequestId() != 42 {
		t.Fatalf("promotion: %v", f.cmd)
	}
	// c waits behind b; a fencing producer closes b and fails c.
	if f := c.producer("w", 3, 9, pb.ProducerAccessMode_WaitForExclusive); f.cmd.GetProducerSuccess().GetProducerReady() {
		t.Fatalf("second waiter answered ready: %v", f.cmd)
	}
	d := dialRaw(t, s)
	if f := d.producer("w", 1, 1, pb.ProducerAccessMode_ExclusiveWithFencing); !f.cmd.GetProducerSuccess().GetProducerReady() {
		t.Fatalf("fencing producer: %v", f.cmd)
	}
	b.expect(pb.BaseCommand_CLOSE_PRODUCER, 5*time.Second)
	if e := c.expect(pb.BaseCommand_ERROR, 5*time.Second); e.cmd.GetError().GetError() != pb.ServerError_ProducerFenced || e.cmd.GetError().GetRequestId() != 9 {
		t.Fatalf("waiter: %v", e.cmd)
	}
}

func u64(v uint64) *uint64 { return &v }
