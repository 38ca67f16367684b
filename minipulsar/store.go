package minipulsar

// store persists broker state. The in-memory broker uses memStore; with a
// data directory, fileStore (see store_file.go and
// docs/adr/001-minipulsar-storage.md).
//
// Calls come from many goroutines. appendEntry's done callbacks must run in
// the order of the appendEntry calls for one topic, and only once the entry
// is durable.
type store interface {
	putTopic(topic string, ledger, nextLedger uint64) error
	putPartitioned(topic string, partitions int) error
	deletePartitioned(topic string) error
	deleteTopic(topic string) error
	// appendEntry persists an entry with the producer's highest sequence id
	// so far (for deduplication after a restart).
	appendEntry(topic string, id uint64, data []byte, producer string, lastSeq int64, done func(error))
	// putCursor records a durable cursor; it may be written lazily but is
	// on disk after sync.
	putCursor(topic, sub string, cs cursorState)
	deleteCursor(topic, sub string)
	// sync makes everything durable and releases the store.
	sync() error
}

// snapshot is what a store loads at start.
type snapshot struct {
	nextLedger  uint64
	partitioned map[string]int
	topics      []storedTopic
}

type storedTopic struct {
	name   string
	ledger uint64
	first  uint64
	// entries: every entry's bytes, loaded only for the store's own tests;
	// the broker's store loads metas instead (fileStoreConfig.metaOnly):
	// every entry evicted, its bytes left on disk, and delays holds the
	// delivery times of delayed ones.
	entries [][]byte
	metas   []entry
	delays  map[uint64]int64
	cursors map[string]cursorState
	lastSeq map[string]int64
}

type memStore struct{}

func (memStore) putTopic(string, uint64, uint64) error { return nil }
func (memStore) putPartitioned(string, int) error      { return nil }
func (memStore) deletePartitioned(string) error        { return nil }
func (memStore) deleteTopic(string) error              { return nil }
func (memStore) putCursor(string, string, cursorState) {}
func (memStore) deleteCursor(string, string)           {}
func (memStore) sync() error                           { return nil }
func (memStore) appendEntry(_ string, _ uint64, _ []byte, _ string, _ int64, done func(error)) {
	done(nil)
}
