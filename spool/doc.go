// Package spool is the sidecar's last line of defence: a local write-ahead
// log for messages that no Pulsar cluster took in time. A record is
// acknowledged to the producer ("spooled") only after Append returns, and
// Append returns only after the record is fsynced.
//
// # Use
//
//	s, err := spool.Open(dir, spool.Options{MaxBytes: 2 << 30})
//	pos, err := s.Append(ctx, spool.Record{UID: uid, Topic: topic, Payload: p})
//	r := s.NewReader()             // oldest unacknowledged record first
//	pos, rec, err := r.Next(ctx)   // blocks until a record is there
//	err = s.Ack(pos)               // once rec is safely in a cluster
//	err = s.Close()
//
// # Guarantees
//
//   - Append is durable on return (write, then fsync; a new segment's
//     directory entry is fsynced before the first record goes into it).
//   - Concurrent appends share one write and one fsync: a single writer
//     goroutine commits everything that queued up while the previous fsync
//     ran (group commit; Options.MaxBatchRecords = 1 turns it off).
//   - Records are replayed in append order, which keeps per-topic order.
//   - A segment file is deleted only when every record in it is
//     acknowledged and no more appends go to it.
//   - Acknowledgements persist in a checkpoint file (written to a temporary
//     file, fsynced, renamed, directory fsynced) every
//     Options.CheckpointInterval, on Checkpoint and on Close. After a crash,
//     records acknowledged since the last checkpoint are replayed again: a
//     few duplicates, which the sidecar drops by UID. An unacknowledged
//     record is never skipped; an unreadable checkpoint means everything is
//     replayed.
//   - ErrFull (Options.MaxBytes reached) and ErrWrite (write or fsync
//     failed, for example ENOSPC) fail only the appends concerned. After a
//     failed write the segment is truncated back to its last durable record,
//     so nothing acknowledged is touched and later appends work once space
//     is back. After a failed fsync the segment is not written again; the
//     next append starts a new one.
//   - Open verifies every record's checksum. A torn or damaged tail is moved
//     into a ".corrupt" file next to its segment, reported by Recovery,
//     Stats and the logger, and the valid prefix is kept and replayed.
//     Nothing is silently dropped.
//
// # On disk
//
// A directory holds LOCK (an flock held while open), checkpoint, and
// segment files spool-000000000001.log, spool-000000000002.log, ... Segment
// ids grow and are never reused. A segment is a 16-byte header (magic
// "PSSG", format version 1, three zero bytes, the segment id as uint64
// little-endian) followed by frames:
//
//	uint32 LE  payload length (> 0)
//	uint32 LE  CRC-32C (Castagnoli) of the four length bytes and the payload
//	[]byte     payload: one Record in the encoding documented at Record.MarshalBinary
//
// A Pos is a segment id and the offset of a frame in it. See
// docs/adr/010-spool-format.md for the reasoning.
package spool
