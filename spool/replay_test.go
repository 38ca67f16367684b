package spool

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

// simulateCrash stops s without its final checkpoint, the way a killed
// process would leave acknowledgements: only those of the last Checkpoint
// call are on disk. (Queued appends are still committed; the SIGKILL test
// covers a real crash.)
func simulateCrash(s *Spool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
		s.wg.Wait()
		_ = s.lock.Close()
		s.closeErr = ErrClosed
	})
}

func TestRestartResumesFromUnacked(t *testing.T) {
	const n = 20
	except := func(all int, acked ...int) []string {
		var out []string
		for i := range all {
			if !slices.Contains(acked, i) {
				out = append(out, testRecord(i).UID)
			}
		}
		return out
	}
	tests := []struct {
		name         string
		segmentBytes int64
		acked        []int // acknowledged and checkpointed
		later        []int // acknowledged after the last checkpoint
		crash        bool  // stop without Close's checkpoint
		want         []string
	}{
		{name: "nothing acknowledged", want: uidRange(0, n)},
		{name: "prefix acknowledged", acked: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, want: uidRange(10, n)},
		{name: "out of order", acked: []int{0, 1, 2, 5, 7, 19}, want: except(n, 0, 1, 2, 5, 7, 19)},
		{name: "everything", acked: seq(0, n), want: nil},
		{name: "out of order across segments", segmentBytes: 300, acked: []int{0, 3, 4, 5, 6, 11, 18, 19}, want: except(n, 0, 3, 4, 5, 6, 11, 18, 19)},
		{name: "Close persists later acks", acked: []int{0, 1}, later: []int{2, 3, 9}, want: except(n, 0, 1, 2, 3, 9)},
		// Documented: acknowledgements after the last checkpoint are lost in
		// a crash and their records replayed again (the sidecar dedups by UID).
		{name: "crash replays acks after the checkpoint", acked: []int{0, 1}, later: []int{2, 3, 9}, crash: true, want: except(n, 0, 1)},
		{name: "crash with nothing checkpointed", later: []int{0, 1, 2}, crash: true, want: uidRange(0, n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := testOptions(t)
			opts.SegmentBytes = tt.segmentBytes
			s := openT(t, dir, opts)
			ps := appendN(t, s, 0, n)
			for _, i := range tt.acked {
				require.NoError(t, s.Ack(ps[i]))
			}
			require.NoError(t, s.Checkpoint())
			for _, i := range tt.later {
				require.NoError(t, s.Ack(ps[i]))
			}
			if tt.crash {
				simulateCrash(s)
			} else {
				require.NoError(t, s.Close())
			}

			s = openT(t, dir, opts)
			gs := readUnacked(t, s)
			require.Equal(t, tt.want, uids(gs))
			for _, g := range gs {
				require.Equal(t, ps[uidIndex(t, g.rec.UID)], g.pos, "positions survive a restart")
			}
			// A second restart without further acks changes nothing.
			require.NoError(t, s.Close())
			s = openT(t, dir, opts)
			require.Equal(t, tt.want, uids(readUnacked(t, s)))
			if len(tt.want) == 0 {
				require.Empty(t, segmentFiles(t, dir), "fully acknowledged segments are removed")
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func uidIndex(t *testing.T, uid string) int {
	for i := range 10000 {
		if testRecord(i).UID == uid {
			return i
		}
	}
	t.Fatalf("unknown uid %q", uid)
	return -1
}

func TestSegmentRemovedOnlyWhenFullyAcked(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	opts.SegmentBytes = 300
	s := openT(t, dir, opts)
	ps := appendN(t, s, 0, 12)
	bySeg := map[uint64][]Pos{}
	var segs []uint64
	for _, p := range ps {
		if len(bySeg[p.Segment]) == 0 {
			segs = append(segs, p.Segment)
		}
		bySeg[p.Segment] = append(bySeg[p.Segment], p)
	}
	require.GreaterOrEqual(t, len(segs), 3)
	first := bySeg[segs[0]]
	require.Greater(t, len(first), 1)
	path := filepath.Join(dir, segmentName(segs[0]))

	// Acknowledge the first segment backwards: the file stays until the last.
	for i := len(first) - 1; i > 0; i-- {
		require.NoError(t, s.Ack(first[i]))
		require.FileExists(t, path)
	}
	require.NoError(t, s.Ack(first[0]))
	require.NoFileExists(t, path)
	require.Equal(t, len(segs)-1, s.Stats().Segments)

	// The segment being appended to is kept even when fully acknowledged,
	// and removed at Close.
	last := bySeg[segs[len(segs)-1]]
	lastPath := filepath.Join(dir, segmentName(segs[len(segs)-1]))
	for _, p := range last {
		require.NoError(t, s.Ack(p))
	}
	require.FileExists(t, lastPath)
	require.NoError(t, s.Close())
	require.NoFileExists(t, lastPath)

	s = openT(t, dir, opts)
	want := uidRange(len(first), len(ps)-len(last))
	require.Equal(t, want, uids(readUnacked(t, s)))
	require.Equal(t, diskSize(t, dir), s.Stats().DiskBytes)
}

func TestCheckpointUnreadableReplaysEverything(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	s := openT(t, dir, opts)
	ps := appendN(t, s, 0, 5)
	require.NoError(t, s.Ack(ps[0]))
	require.NoError(t, s.Ack(ps[1]))
	require.NoError(t, s.Close())

	ck := filepath.Join(dir, checkpointName)
	b, err := os.ReadFile(ck)
	require.NoError(t, err)
	b[len(b)/2] ^= 0x10
	require.NoError(t, os.WriteFile(ck, b, 0o600))

	s = openT(t, dir, opts)
	require.Contains(t, s.Recovery().CheckpointProblem, "checksum")
	require.Equal(t, uidRange(0, 5), uids(readUnacked(t, s)), "acknowledged ones come again; none is skipped")
	require.FileExists(t, ck+corruptSuffix)
	require.Equal(t, 1, s.Stats().CorruptFiles)
}

// TestSegmentIDsNeverReused: a new segment must not take the id of one an
// old checkpoint still describes, or its records would count as acknowledged.
func TestSegmentIDsNeverReused(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t)
	opts.SegmentBytes = 300
	s := openT(t, dir, opts)
	ps := appendN(t, s, 0, 10)
	for _, p := range ps[:9] {
		require.NoError(t, s.Ack(p))
	}
	require.NoError(t, s.Checkpoint()) // describes acks in the last segment
	require.NoError(t, s.Ack(ps[9]))
	simulateCrash(s) // every segment gone, the checkpoint still names the last

	s = openT(t, dir, opts)
	require.Empty(t, readUnacked(t, s))
	p := appendN(t, s, 100, 3)
	require.Greater(t, p[0].Segment, ps[9].Segment)
	require.NoError(t, s.Close())
	s = openT(t, dir, opts)
	require.Equal(t, uidRange(100, 103), uids(readUnacked(t, s)))
}

func TestCheckpointEncoding(t *testing.T) {
	c := checkpoint{next: 42, acks: map[uint64][]span{3: {{0, 5}, {7, 8}}, 41: {{2, 1000}}}}
	b := c.encode()
	got, err := decodeCheckpoint(b)
	require.NoError(t, err)
	require.Equal(t, c, got)

	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"bad magic", append([]byte("XXXX"), b[4:]...), ErrCorrupt},
		{"bit flip", flip(b, len(b)/2), ErrCorrupt},
		{"newer version", resum(append(append([]byte(checkpointMagic), 9), b[5:len(b)-4]...)), ErrUnsupported},
		// next = 3, one segment: id 3, one range: gap 0, length 1.
		{"segment not below next id", resum(append([]byte(checkpointMagic), checkpointVersion, 3, 1, 3, 1, 0, 1)), ErrCorrupt},
		{"empty range", resum(append([]byte(checkpointMagic), checkpointVersion, 4, 1, 3, 1, 0, 0)), ErrCorrupt},
		{"trailing bytes", resum(append([]byte(checkpointMagic), checkpointVersion, 4, 0, 0)), ErrCorrupt},
	}
	ok := resum(append([]byte(checkpointMagic), checkpointVersion, 4, 1, 3, 1, 0, 1))
	_, err = decodeCheckpoint(ok)
	require.NoError(t, err, "the hand-built form is right when valid")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeCheckpoint(tt.in)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func flip(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 1
	return out
}

// resum appends a valid checksum to a checkpoint body.
func resum(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}
