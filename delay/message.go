package delay

import (
	"encoding/json"
	"fmt"
	"time"
)

// Message is a message held back until its due time, then forwarded to its
// topic. The sidecar fills it from a produce request with deliverAfter or
// deliverAt.
type Message struct {
	// UID is the sidecar's id of the message, unique among scheduled
	// messages; scheduling the same UID twice stores it once.
	UID string
	// Topic is where the message goes when due.
	Topic string
	// Key is the optional business key; messages can be listed and
	// cancelled by (Topic, Key).
	Key        string
	Tags       []string
	Properties map[string]string
	Payload    []byte
	// EventTime is the producer's event time; zero when not given.
	EventTime time.Time
	// Due is when the message must be forwarded, never earlier. The index
	// keeps whole seconds and rounds up.
	Due time.Time
	// App is the producing app.
	App string
	// IndexID, when set, is the message's key in the index in place of
	// UID. A retry plan schedules one copy of a uid per step, and a step's
	// copy is scheduled while the previous copy's forward may still be
	// waiting for its ack in the index; under the uid alone it would be
	// taken for a repeat and dropped. Scheduling one IndexID twice stores it
	// once. Get, Cancel and Reschedule by uid do not see such copies.
	IndexID string
}

// indexID is m's key in the index.
func (m *Message) indexID() string {
	if m.IndexID != "" {
		return m.IndexID
	}
	return m.UID
}

// Scheduled is a message in the index with the index's own bookkeeping.
type Scheduled struct {
	Message
	// Seq is the index's number for the message, also its timer id in a Wheel.
	Seq uint64
	// Claims counts how often a replica has taken the message for
	// forwarding; above 1 means a forward failed or a replica died.
	Claims int
	// LeaseUntil is set while a claim holds the message: until then no other
	// replica takes it; after it, the message is due again.
	LeaseUntil time.Time
	// Mode is set by Engine.Get and Cancel: ModeWheel, or ModeLevel for a
	// level message's record (then Level and Size are set, and the
	// payload and properties are not: they stay in the level topic).
	Mode  Mode
	Level string
	Size  int // payload bytes
}

// record is the stored form of a Message: JSON with short names, one Redis
// string per message. The Lua scripts read "t" and "k" (topic and key).
type record struct {
	UID     string            `json:"u"`
	Topic   string            `json:"t"`
	Key     string            `json:"k,omitempty"`
	Tags    []string          `json:"g,omitempty"`
	Props   map[string]string `json:"p,omitempty"`
	Payload []byte            `json:"b,omitempty"`
	Event   int64             `json:"e,omitempty"` // Unix milliseconds
	Due     int64             `json:"d"`           // Unix seconds
	App     string            `json:"a,omitempty"`
	IndexID string            `json:"i,omitempty"` // when not UID; cancelKeyScript reads it
}

func encodeMessage(m *Message) ([]byte, error) {
	r := record{
		UID: m.UID, Topic: m.Topic, Key: m.Key, Tags: m.Tags, Props: m.Properties,
		Payload: m.Payload, Due: dueSeconds(m.Due), App: m.App, IndexID: m.IndexID,
	}
	if !m.EventTime.IsZero() {
		r.Event = m.EventTime.UnixMilli()
	}
	return json.Marshal(&r)
}

func decodeMessage(b []byte) (Message, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	m := Message{
		UID: r.UID, Topic: r.Topic, Key: r.Key, Tags: r.Tags, Properties: r.Props,
		Payload: r.Payload, Due: time.Unix(r.Due, 0), App: r.App, IndexID: r.IndexID,
	}
	if r.Event != 0 {
		m.EventTime = time.UnixMilli(r.Event)
	}
	return m, nil
}

// dueSeconds rounds t up to a whole second.
func dueSeconds(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}
