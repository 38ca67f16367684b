package minipulsar

// The entry cache: with a data directory every durable entry of a
// persistent topic is in its segment files, so its bytes need not stay in
// memory. As Pulsar's managed-ledger cache does, the broker keeps the bytes
// of entries some subscription has yet to read and drops the rest; past
// Options.EntryCacheSize it drops the oldest entries of the topic being
// written, read or not. A dropped entry keeps its metadata (size, publish
// time, batch size, sticky-key hashes, delivery time), so dispatch, stats and
// seeks never read the disk; only delivering it or showing its bytes (peek,
// get by id, Inspect) reads it back, from the page cache in the common case.
// Without a data directory nothing is dropped: memory is the only copy.

// DefaultEntryCacheSize is Options.EntryCacheSize's default: 32 MiB.
const DefaultEntryCacheSize int64 = 32 << 20

// entryReader is a store that can read a durable entry back.
type entryReader interface {
	readEntry(topic string, id uint64) ([]byte, error)
}

// reader returns the store to read evicted entries from, or nil when this
// topic's entries must stay in memory.
func (t *topic) reader() entryReader {
	if t.name.domain != "persistent" {
		return nil
	}
	r, _ := t.s.store.(entryReader)
	return r
}

// evictLocked drops the bytes of durable entries that every subscription
// has read, or, when the server's cache is over its bound, of every durable
// entry of t, oldest first. Caller holds t.mu.
func (t *topic) evictLocked() {
	if t.cachedFrom >= t.dispatchable || t.reader() == nil {
		return
	}
	read := t.dispatchable
	for _, sub := range t.subs {
		read = min(read, sub.readPos)
	}
	limit := t.s.opts.EntryCacheSize
	for t.cachedFrom < t.dispatchable {
		if t.cachedFrom >= read && t.s.cacheBytes.Load() <= limit {
			return
		}
		if e := &t.entries[t.cachedFrom-t.first]; e.data != nil {
			t.uncache(e)
			e.data = nil
			e.flags |= entryEvicted
		}
		t.cachedFrom++
	}
}

// uncache takes an entry that is about to lose its bytes off the cache's
// count. Caller holds t.mu.
func (t *topic) uncache(e *entry) {
	if e.data != nil {
		t.s.cacheBytes.Add(-int64(e.size))
	}
}

// cachedBytes is what t holds of the server's cacheBytes: the bytes of its
// entries from cachedFrom on. Caller holds t.mu.
func (t *topic) cachedBytes() int64 {
	var n int64
	for i := t.cachedFrom - t.first; i < uint64(len(t.entries)); i++ {
		if t.entries[i].data != nil {
			n += int64(t.entries[i].size)
		}
	}
	return n
}

// entryBytes returns an entry's bytes, reading them back from the store when
// they were evicted. ok is false for a void entry and for one that cannot be
// read (logged: the data directory was damaged or removed under the broker).
// Caller holds t.mu.
func (t *topic) entryBytes(id uint64, e *entry) (data []byte, ok bool) {
	if e.data != nil {
		return e.data, true
	}
	if e.flags&entryEvicted == 0 {
		return nil, false
	}
	r := t.reader()
	if r == nil {
		return nil, false
	}
	data, err := r.readEntry(t.full, id)
	if err != nil {
		t.s.log.Error("cannot read an entry back from the data directory", "topic", t.full, "entry", id, "err", err)
		return nil, false
	}
	return data, true
}
