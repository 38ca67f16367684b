package consoleapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MessageID is a broker message id as the sidecar writes it in trace events
// and API answers: "ledgerId:entryId:partition:batchIndex" (e.g. "12:3:0:0";
// partition 0 also for a non-partitioned topic).
type MessageID struct {
	Ledger, Entry    int64
	Partition, Batch int32
	HasPartition     bool // the text named the partition
	HasBatch         bool // the text named the batch index
}

// ParseMessageID reads "ledgerId:entryId[:partition[:batchIndex]]". The
// partition and batch index may be -1 (Pulsar's tools print that for a
// non-partitioned topic and a message outside a batch).
func ParseMessageID(s string) (MessageID, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return MessageID{}, fmt.Errorf("message id %q: want ledgerId:entryId[:partition[:batchIndex]]", truncate(s, 60))
	}
	var id MessageID
	var err error
	if id.Ledger, err = parseNonNeg(parts[0]); err != nil {
		return MessageID{}, fmt.Errorf("message id %q: ledger id: %w", truncate(s, 60), err)
	}
	if id.Entry, err = parseNonNeg(parts[1]); err != nil {
		return MessageID{}, fmt.Errorf("message id %q: entry id: %w", truncate(s, 60), err)
	}
	if len(parts) > 2 {
		if id.Partition, err = parseIndex(parts[2]); err != nil {
			return MessageID{}, fmt.Errorf("message id %q: partition: %w", truncate(s, 60), err)
		}
		id.HasPartition = true
	}
	if len(parts) > 3 {
		if id.Batch, err = parseIndex(parts[3]); err != nil {
			return MessageID{}, fmt.Errorf("message id %q: batch index: %w", truncate(s, 60), err)
		}
		id.HasBatch = true
	}
	return id, nil
}

var errNotNumber = errors.New("not a non-negative decimal integer")

func parseNonNeg(s string) (int64, error) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, errNotNumber
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errNotNumber
	}
	return n, nil
}

func parseIndex(s string) (int32, error) {
	if s == "-1" {
		return -1, nil
	}
	n, err := parseNonNeg(s)
	if err != nil || n > 1<<30 {
		return 0, errors.New("not -1 or a non-negative decimal integer")
	}
	return int32(n), nil
}

// String formats the id as the sidecar does; a partition or batch index the
// text did not name is 0.
func (id MessageID) String() string {
	return strconv.FormatInt(id.Ledger, 10) + ":" + strconv.FormatInt(id.Entry, 10) + ":" +
		strconv.Itoa(int(id.Partition)) + ":" + strconv.Itoa(int(id.Batch))
}

// Position is a cursor position: a ledger and an entry (-1 is "before the
// first entry").
type Position struct {
	Ledger, Entry int64
}

func (p Position) String() string {
	return strconv.FormatInt(p.Ledger, 10) + ":" + strconv.FormatInt(p.Entry, 10)
}

// Compare orders positions by ledger, then entry.
func (p Position) Compare(o Position) int {
	switch {
	case p.Ledger < o.Ledger:
		return -1
	case p.Ledger > o.Ledger:
		return 1
	case p.Entry < o.Entry:
		return -1
	case p.Entry > o.Entry:
		return 1
	}
	return 0
}

// ParsePosition reads "ledger:entry" (entry may be -1).
func ParsePosition(s string) (Position, error) {
	l, e, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Position{}, fmt.Errorf("position %q: want ledger:entry", truncate(s, 60))
	}
	var p Position
	var err error
	if p.Ledger, err = parseNonNeg(l); err != nil {
		return Position{}, fmt.Errorf("position %q: ledger: %w", truncate(s, 60), err)
	}
	if e == "-1" {
		p.Entry = -1
	} else if p.Entry, err = parseNonNeg(e); err != nil {
		return Position{}, fmt.Errorf("position %q: entry: %w", truncate(s, 60), err)
	}
	return p, nil
}

// Range is a range of acknowledged entries above the mark-delete position,
// open at Lower and closed at Upper: Lower < p <= Upper.
type Range struct {
	Lower, Upper Position
}

// Contains reports whether p is in the range.
func (r Range) Contains(p Position) bool {
	return r.Lower.Compare(p) < 0 && p.Compare(r.Upper) <= 0
}

// maxRanges bounds how many individually deleted ranges are parsed; Pulsar
// itself caps what it prints.
const maxRanges = 100000

// ParseRanges reads a cursor's individuallyDeletedMessages as Pulsar prints
// it: "[(3:5..3:7],(3:9..3:12]]" (spaces after commas allowed; "[]" is
// empty).
func ParseRanges(s string) ([]Range, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "[]" {
		return nil, nil
	}
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return nil, fmt.Errorf("ranges %q: want [(l:e..l:e],...]", truncate(s, 60))
	}
	body := s[1 : len(s)-1]
	var out []Range
	for body != "" {
		body = strings.TrimLeft(body, " ")
		if !strings.HasPrefix(body, "(") {
			return nil, fmt.Errorf("ranges %q: a range must start with '('", truncate(s, 60))
		}
		end := strings.IndexByte(body, ']')
		if end < 0 {
			return nil, fmt.Errorf("ranges %q: a range must end with ']'", truncate(s, 60))
		}
		lo, hi, ok := strings.Cut(body[1:end], "..")
		if !ok {
			return nil, fmt.Errorf("ranges %q: want lower..upper", truncate(s, 60))
		}
		var r Range
		var err error
		if r.Lower, err = ParsePosition(lo); err != nil {
			return nil, fmt.Errorf("ranges: %w", err)
		}
		if r.Upper, err = ParsePosition(hi); err != nil {
			return nil, fmt.Errorf("ranges: %w", err)
		}
		if r.Upper.Compare(r.Lower) <= 0 {
			return nil, fmt.Errorf("ranges %q: empty range (%s..%s]", truncate(s, 60), r.Lower, r.Upper)
		}
		if len(out) >= maxRanges {
			return nil, fmt.Errorf("ranges: more than %d", maxRanges)
		}
		out = append(out, r)
		body = strings.TrimLeft(body[end+1:], " ")
		if body != "" {
			if body[0] != ',' {
				return nil, fmt.Errorf("ranges %q: ranges must be separated by ','", truncate(s, 60))
			}
			body = body[1:]
			if strings.TrimSpace(body) == "" {
				return nil, fmt.Errorf("ranges %q: trailing ','", truncate(s, 60))
			}
		}
	}
	return out, nil
}

// Cursor is a durable subscription's position on a topic, from the
// broker's internal stats.
type Cursor struct {
	MarkDelete          Position // every entry up to and including it is acknowledged
	IndividuallyDeleted []Range  // acknowledged entries above MarkDelete
	// Raw is what the broker printed.
	Raw struct{ MarkDelete, IndividuallyDeleted string }
	// ParseError says why the broker's cursor could not be read; such a
	// cursor acknowledges nothing.
	ParseError string
}

// Acknowledged reports whether the cursor has moved past entry p: it is at
// or below the mark-delete position or inside an individually deleted
// range. (An entry acknowledged only in part, some messages of a batch, is
// not.)
func (c *Cursor) Acknowledged(p Position) bool {
	if c.ParseError != "" {
		return false
	}
	if p.Compare(c.MarkDelete) <= 0 {
		return true
	}
	for _, r := range c.IndividuallyDeleted {
		if r.Contains(p) {
			return true
		}
	}
	return false
}
