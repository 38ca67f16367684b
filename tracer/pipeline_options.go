package tracer

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Pipeline. Sink and Dir are required; zero values of
// the others take the defaults noted.
type Options struct {
	Sink Sink   // where events go
	Dir  string // the outbox directory (created if missing, locked while open)

	QueueSize     int           // events buffered between Record and the writer; 16384
	OverflowSize  int           // events buffered for the overflow spiller when the queue is full; 16384
	BatchSize     int           // events per sink write and per outbox record; 500
	FlushInterval time.Duration // longest an event waits for its batch to fill; 200ms
	WriteTimeout  time.Duration // deadline of one sink write; 10s

	ReplayMinBackoff time.Duration // first wait after a failed replay; 500ms
	ReplayMaxBackoff time.Duration // longest wait between replay attempts; 30s

	// IngestBudget is the share of one CPU the sink may use while the data
	// plane is busy (see governor): 0.005; negative: never defer, write each
	// batch as soon as it is full. Batches beyond the budget wait in the
	// outbox and are replayed when the data plane is quiet.
	IngestBudget float64
	// BusyCPUShare is the share of GOMAXPROCS that the process's CPU
	// outside the sink, plus the CPU the sink needs to keep up, must reach
	// before the budget applies: below it there are CPUs to spare and the
	// sink writes at full speed. 0.7; negative: the budget applies whatever
	// the process's CPU (the arrival rate alone decides).
	BusyCPUShare float64
	// DeferMaxBytes and DeferMaxAge end deferral: once the outbox holds more
	// than DeferMaxBytes, or its oldest event is older than DeferMaxAge, the
	// sink runs at full speed whatever the data plane is doing. 256 MiB
	// (at most a quarter of MaxOutboxBytes) and 5m.
	DeferMaxBytes int64
	DeferMaxAge   time.Duration

	SegmentBytes   int64 // outbox segment size before a new file is started; 64 MiB
	MaxOutboxBytes int64 // outbox size beyond which spills fail (and are counted); 1 GiB; <0 for no limit
	SyncEachSpill  bool  // fsync after every outbox record, not only when a segment is sealed

	// Registerer receives the pipeline's metrics (nil: not registered).
	// They are unregistered on Close.
	Registerer prometheus.Registerer
	Logger     *slog.Logger // slog.Default() when nil
}

func (o *Options) defaults() error {
	if o.Sink == nil {
		return errors.New("tracer: pipeline needs a sink")
	}
	if o.Dir == "" {
		return errors.New("tracer: pipeline needs an outbox directory")
	}
	setDefault(&o.QueueSize, 16384)
	setDefault(&o.OverflowSize, 16384)
	setDefault(&o.BatchSize, 500)
	setDefault(&o.FlushInterval, 200*time.Millisecond)
	setDefault(&o.WriteTimeout, 10*time.Second)
	setDefault(&o.ReplayMinBackoff, 500*time.Millisecond)
	setDefault(&o.ReplayMaxBackoff, 30*time.Second)
	setDefault(&o.SegmentBytes, 64<<20)
	if o.MaxOutboxBytes == 0 {
		o.MaxOutboxBytes = 1 << 30
	}
	if o.IngestBudget == 0 {
		o.IngestBudget = 0.005
	}
	if o.BusyCPUShare == 0 {
		o.BusyCPUShare = 0.7
	}
	if o.DeferMaxBytes <= 0 {
		o.DeferMaxBytes = 256 << 20
		if o.MaxOutboxBytes > 0 {
			o.DeferMaxBytes = min(o.DeferMaxBytes, o.MaxOutboxBytes/4)
		}
	}
	setDefault(&o.DeferMaxAge, 5*time.Minute)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}
