package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// The checkpoint file records which records are acknowledged, so a restart
// replays only the others. It is rewritten whole: written to checkpoint.tmp,
// fsynced, renamed over checkpoint, and the directory fsynced. Layout:
//
//	magic "PSCK" | version byte = 1
//	uvarint  next segment id (every id below it may have been used)
//	uvarint  segment count, then per segment:
//	         uvarint id, uvarint range count, then per range of acknowledged
//	         record indexes: uvarint gap from the previous range's end, uvarint length (> 0)
//	uint32 LE CRC-32C of everything before it
//
// Only live segments with at least one acknowledged record appear; a segment
// whose records are all acknowledged is deleted and needs no entry.
const (
	checkpointName    = "checkpoint"
	checkpointTmpName = "checkpoint.tmp"
	checkpointMagic   = "PSCK"
	checkpointVersion = 1
)

// span is a half-open range [start, end) of record indexes in a segment.
type span struct{ start, end int }

type checkpoint struct {
	next uint64
	acks map[uint64][]span
}

func (c *checkpoint) encode() []byte {
	b := append([]byte(checkpointMagic), checkpointVersion)
	b = binary.AppendUvarint(b, c.next)
	b = binary.AppendUvarint(b, uint64(len(c.acks)))
	for _, id := range slices.Sorted(maps.Keys(c.acks)) {
		spans := c.acks[id]
		b = binary.AppendUvarint(b, id)
		b = binary.AppendUvarint(b, uint64(len(spans)))
		prev := 0
		for _, sp := range spans {
			b = binary.AppendUvarint(b, uint64(sp.start-prev))
			b = binary.AppendUvarint(b, uint64(sp.end-sp.start))
			prev = sp.end
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	bad := func(what string) (checkpoint, error) {
		return checkpoint{}, fmt.Errorf("%w: checkpoint: %s", ErrCorrupt, what)
	}
	if len(b) < len(checkpointMagic)+1+4 || string(b[:4]) != checkpointMagic {
		return bad("bad magic")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("checksum mismatch")
	}
	if v := body[4]; v != checkpointVersion {
		if v > checkpointVersion {
			return checkpoint{}, fmt.Errorf("%w: checkpoint version %d", ErrUnsupported, v)
		}
		return bad(fmt.Sprintf("version %d", v))
	}
	d := decoder{b: body[5:]}
	c := checkpoint{next: d.uvarint(), acks: map[uint64][]span{}}
	nseg := d.count(2)
	for range nseg {
		id := d.uvarint()
		nspan := d.count(2)
		if d.err != nil {
			break
		}
		if _, dup := c.acks[id]; dup {
			return bad(fmt.Sprintf("segment %d listed twice", id))
		}
		if id >= c.next {
			return bad(fmt.Sprintf("segment %d not below next id %d", id, c.next))
		}
		spans := make([]span, 0, nspan)
		prev := uint64(0)
		for range nspan {
			start := prev + d.uvarint()
			end := start + d.uvarint()
			if d.err != nil {
				break
			}
			if end <= start || start < prev || end > 1<<40 {
				return bad(fmt.Sprintf("segment %d: bad range", id))
			}
			spans = append(spans, span{int(start), int(end)})
			prev = end
		}
		c.acks[id] = spans
	}
	if d.err == nil && len(d.b) != 0 {
		return bad("trailing bytes")
	}
	if d.err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint: %w", d.err)
	}
	return c, nil
}

// readCheckpoint returns the stored checkpoint; a missing file is an empty
// checkpoint.
func readCheckpoint(dir string) (checkpoint, error) {
	b, err := os.ReadFile(filepath.Join(dir, checkpointName))
	if errors.Is(err, fs.ErrNotExist) {
		return checkpoint{acks: map[uint64][]span{}}, nil
	}
	if err != nil {
		return checkpoint{}, err
	}
	return decodeCheckpoint(b)
}

// writeCheckpoint replaces the checkpoint atomically and durably.
func writeCheckpoint(dir string, c *checkpoint) error {
	tmp := filepath.Join(dir, checkpointTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(c.encode())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, checkpointName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("spool: write checkpoint: %w", err)
	}
	return nil
}

// ackedSpans turns a segment's entries into ranges of acknowledged indexes;
// every entry before low is known to be acknowledged.
func ackedSpans(entries []entry, low int) []span {
	var spans []span
	i := 0
	if low > 0 {
		spans = append(spans, span{0, low})
		i = low
	}
	for i < len(entries) {
		if !entries[i].acked {
			i++
			continue
		}
		j := i
		for j < len(entries) && entries[j].acked {
			j++
		}
		spans = append(spans, span{i, j})
		i = j
	}
	return spans
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
