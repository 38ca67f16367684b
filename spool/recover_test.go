package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRecoveryDamagedTail damages a closed spool's segment the ways disks and
// crashes do, then checks that Open keeps and replays the valid prefix, moves
// exactly the bad bytes into a ".corrupt" file, reports it, and that the
// spool works normally afterwards.
func TestRecoveryDamagedTail(t *testing.T) {
	const n = 6
	type damage func(t *testing.T, b []byte, ps []Pos) []byte
	flipAt := func(rec, delta int) damage {
		return func(_ *testing.T, b []byte, ps []Pos) []byte {
			b[ps[rec].Offset+int64(delta)] ^= 0x04
			return b
		}
	}
	cutAt := func(rec, delta int) damage {
		return func(_ *testing.T, b []byte, ps []Pos) []byte { return b[:ps[rec].Offset+int64(delta)] }
	}
	tests := []struct {
		name   string
		damage damage
		kept   int    // records left in the valid prefix
		reason string // "" when nothing is set aside
	}{
		{"torn inside a payload", cutAt(4, frameHeaderSize+10), 4, reasonTruncated},
		{"torn inside a frame header", cutAt(4, 3), 4, reasonTruncated},
		{"torn right after a frame header", cutAt(5, frameHeaderSize), 5, reasonTruncated},
		{"bit flip in a payload", flipAt(3, frameHeaderSize+5), 3, reasonChecksum},
		{"bit flip in a length", flipAt(3, 0), 3, reasonChecksum},
		{"bit flip in a checksum", flipAt(5, 5), 5, reasonChecksum},
		{"high bit of a length", flipAt(2, 3), 2, reasonTruncated},
		{"zeros after the last record", func(_ *testing.T, b []byte, _ []Pos) []byte { return append(b, make([]byte, 100)...) }, n, reasonLength},
		{"text after the last record", func(_ *testing.T, b []byte, _ []Pos) []byte { return append(b, "not a frame at all"...) }, n, reasonTruncated},
		{"forged frame after the last record", func(_ *testing.T, b []byte, _ []Pos) []byte {
			return append(b, 5, 0, 0, 0, 'J', 'U', 'N', 'K', 'h', 'e', 'l', 'l', 'o')
		}, n, reasonChecksum},
		{"bad magic", func(_ *testing.T, b []byte, _ []Pos) []byte { b[0] = 'X'; return b }, 0, reasonHeader},
		{"header of another segment", func(_ *testing.T, b []byte, _ []Pos) []byte { b[8]++; return b }, 0, reasonHeader},
		{"header cut short", func(_ *testing.T, b []byte, _ []Pos) []byte { return b[:7] }, 0, reasonHeader},
		{"intact", func(_ *testing.T, b []byte, _ []Pos) []byte { return b }, n, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(t)
			s := openT(t, dir, opts)
			ps := appendN(t, s, 0, n)
			require.NoError(t, s.Close())
			seg := segmentFiles(t, dir)[0]
			orig, err := os.ReadFile(seg)
			require.NoError(t, err)
			damaged := tt.damage(t, slices.Clone(orig), ps)
			require.NoError(t, os.WriteFile(seg, damaged, 0o600))

			s = openT(t, dir, opts)
			rep := s.Recovery()
			gs := readUnacked(t, s)
			require.Equal(t, uidRange(0, tt.kept), uids(gs), "the valid prefix is replayed")
			st := s.Stats()
			if tt.reason == "" {
				require.Empty(t, rep.Corrupt)
				require.Zero(t, st.CorruptTails)
			} else {
				validEnd := int64(len(orig))
				switch {
				case tt.reason == reasonHeader:
					validEnd = 0 // the whole file
				case tt.kept < n:
					validEnd = ps[tt.kept].Offset
				}
				require.Len(t, rep.Corrupt, 1)
				c := rep.Corrupt[0]
				require.Equal(t, CorruptTail{
					Segment: ps[0].Segment, Offset: validEnd, Bytes: int64(len(damaged)) - validEnd,
					Reason: tt.reason, File: seg + corruptSuffix,
				}, c)
				tail, err := os.ReadFile(c.File)
				require.NoError(t, err)
				require.Equal(t, damaged[validEnd:], tail, "exactly the bad bytes are set aside")
				require.Equal(t, 1, st.CorruptTails)
				require.Equal(t, c.Bytes, st.CorruptBytes)
				require.Equal(t, 1, st.CorruptFiles)
				if tt.kept > 0 {
					kept, err := os.ReadFile(seg)
					require.NoError(t, err)
					require.Equal(t, damaged[:validEnd], kept, "the valid prefix stays in place")
				} else {
					require.NoFileExists(t, seg)
				}
			}

			// The spool goes on: new records replay after the prefix, and
			// the next Open finds nothing new to set aside.
			appendN(t, s, 100, 2)
			require.NoError(t, s.Close())
			s = openT(t, dir, opts)
			require.Empty(t, s.Recovery().Corrupt)
			require.Equal(t, append(uidRange(0, tt.kept), uidRange(100, 102)...), uids(readUnacked(t, s)))
		})
	}
}

// TestRecoveryDamageInOlderSegment: damage in a sealed segment loses only
// that segment's tail; later segments replay in full.
func TestRecoveryDamageInOlderSegment(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	opts.SegmentBytes = 400
	s := openT(t, dir, opts)
	ps := appendN(t, s, 0, 12)
	require.NoError(t, s.Close())
	require.NotEqual(t, ps[0].Segment, ps[11].Segment)
	var inFirst int
	for _, p := range ps {
		if p.Segment == ps[0].Segment {
			inFirst++
		}
	}
	require.GreaterOrEqual(t, inFirst, 2)

	seg := filepath.Join(dir, segmentName(ps[0].Segment))
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	b[ps[1].Offset+frameHeaderSize] ^= 0x80
	require.NoError(t, os.WriteFile(seg, b, 0o600))

	s = openT(t, dir, opts)
	want := append(uidRange(0, 1), uidRange(inFirst, 12)...)
	require.Equal(t, want, uids(readUnacked(t, s)))
	require.Len(t, s.Recovery().Corrupt, 1)
	require.Equal(t, reasonChecksum, s.Recovery().Corrupt[0].Reason)
}

func TestRecoveryRemovesEmptySegmentFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, segmentName(7)), nil, 0o600))
	s := openT(t, dir, testOptions(t))
	require.Empty(t, s.Recovery().Corrupt)
	require.Empty(t, segmentFiles(t, dir))
	p := appendN(t, s, 0, 1)
	require.Greater(t, p[0].Segment, uint64(7), "ids go on after any file seen")
}

func TestRecoverySecondCorruptTailGetsItsOwnFile(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	s := openT(t, dir, opts)
	appendN(t, s, 0, 2)
	require.NoError(t, s.Close())
	seg := segmentFiles(t, dir)[0]
	for round := range 2 {
		f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte("junk"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		s = openT(t, dir, opts)
		require.Len(t, s.Recovery().Corrupt, 1)
		require.Equal(t, round+1, s.Stats().CorruptFiles)
		require.NoError(t, s.Close())
	}
	require.FileExists(t, seg+corruptSuffix)
	require.FileExists(t, seg+corruptSuffix+".1")
}

func TestRecoveryRefusesNewerFormat(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testOptions(t))
	appendN(t, s, 0, 2)
	require.NoError(t, s.Close())
	seg := segmentFiles(t, dir)[0]
	b, err := os.ReadFile(seg)
	require.NoError(t, err)
	b[4] = segmentVersion + 1
	require.NoError(t, os.WriteFile(seg, b, 0o600))

	_, err = Open(dir, testOptions(t))
	require.ErrorIs(t, err, ErrUnsupported)
	after, err := os.ReadFile(seg)
	require.NoError(t, err)
	require.Equal(t, b, after, "an older binary must not touch newer data")
}

func segmentBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := appendHeader(nil, 1)
	for i := range n {
		p, err := spooled(i).MarshalBinary()
		require.NoError(t, err)
		b = appendFrame(b, p)
	}
	return b
}

// FuzzScanSegment: any bytes after a valid header scan without panic, and
// what the scan calls valid is a gapless run of verified, decodable frames.
func FuzzScanSegment(f *testing.F) {
	full := segmentBytes(f, 3)
	f.Add(full[headerSize:])
	f.Add(full[headerSize : len(full)-3])
	f.Add(append(slices.Clone(full[headerSize:]), 0, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		data := append(appendHeader(nil, 1), body...)
		res, err := scanSegment(bytes.NewReader(data), int64(len(data)), 1)
		if err != nil {
			require.ErrorIs(t, err, ErrUnsupported)
			return
		}
		require.LessOrEqual(t, res.end, int64(len(data)))
		require.Equal(t, res.reason == "", res.end == int64(len(data)))
		off := int64(headerSize)
		for _, e := range res.entries {
			require.Equal(t, off, e.off)
			frame := data[e.off : e.off+frameHeaderSize+int64(e.n)]
			require.True(t, checkFrame(frame[:frameHeaderSize], frame[frameHeaderSize:]))
			var r Record
			require.NoError(t, r.UnmarshalBinary(frame[frameHeaderSize:]))
			off += int64(len(frame))
		}
		require.Equal(t, off, res.end)
	})
}

// FuzzRecoverSegment: Open on a segment file of arbitrary content never
// fails or panics except for newer-format data, and never drops a byte: what
// stays in the segment followed by what went to ".corrupt" is the original.
// Every record it keeps replays.
func FuzzRecoverSegment(f *testing.F) {
	full := segmentBytes(f, 3)
	f.Add(full)
	f.Add(full[:len(full)-5])
	f.Add(append(slices.Clone(full), "tail"...))
	f.Add(full[:10])
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		seg := filepath.Join(dir, segmentName(1))
		require.NoError(t, os.WriteFile(seg, data, 0o600))
		opts := testOptions(t)
		opts.Logger = discardLogger
		s, err := Open(dir, opts)
		if errors.Is(err, ErrUnsupported) {
			after, rerr := os.ReadFile(seg)
			require.NoError(t, rerr)
			require.Equal(t, data, after)
			return
		}
		require.NoError(t, err)
		defer s.Close()
		kept, _ := os.ReadFile(seg) // may be gone
		tail, _ := os.ReadFile(seg + corruptSuffix)
		if len(data) > 0 {
			if len(kept) == 0 && len(tail) < len(data) {
				kept = appendHeader(nil, 1) // a segment left with only its header is removed
			}
			require.Equal(t, data, append(slices.Clone(kept), tail...))
		}
		r := s.NewReader()
		defer r.Close()
		for range s.Stats().Depth {
			_, _, err := r.Next(context.Background())
			require.NoError(t, err)
		}
	})
}
