package minipulsar

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	metaName    = "meta.json"
	cursorsName = "cursors.json"
	metaVersion = 1
)

// metaFile is meta.json: everything about topics that is not in their own
// directories. A topic's directory is named by its ledger id, which is never
// reused, so a deleted topic needs no tombstone: a directory meta.json does
// not name is the leftover of an interrupted delete and is removed at open.
type metaFile struct {
	Version     int                  `json:"version"`
	NextLedger  uint64               `json:"nextLedger"`
	Topics      map[string]metaTopic `json:"topics"`
	Partitioned map[string]int       `json:"partitioned"`
}

type metaTopic struct {
	Ledger uint64 `json:"ledger"`
}

// readMeta loads meta.json; ok is false when there is none.
func readMeta(dir string) (m metaFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return metaFile{Version: metaVersion, NextLedger: 1, Topics: map[string]metaTopic{}, Partitioned: map[string]int{}}, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("minipulsar: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("%w: %s: %w", ErrCorruptDataDir, metaName, err)
	}
	if m.Version != metaVersion {
		return m, false, fmt.Errorf("%w: %s has version %d, this broker reads %d", ErrCorruptDataDir, metaName, m.Version, metaVersion)
	}
	if m.Topics == nil {
		m.Topics = map[string]metaTopic{}
	}
	if m.Partitioned == nil {
		m.Partitioned = map[string]int{}
	}
	return m, true, nil
}

// writeFileAtomic replaces dir/name with data so that a crash leaves either
// the old or the new content: temp file, fsync, rename, fsync of dir.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("minipulsar: write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// writeFileSync creates path with data and fsyncs it (used to set damaged
// bytes aside).
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateFile cuts path to size and fsyncs it.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// corruptName returns a free name to set path aside under.
func corruptName(path string) string {
	name := path + corruptSuffix
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s.%d%s", path, i, corruptSuffix)
	}
}

func (m metaFile) marshal() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

func marshalCursors(cs map[string]cursorState) ([]byte, error) {
	if cs == nil {
		cs = map[string]cursorState{}
	}
	return json.Marshal(cs)
}
