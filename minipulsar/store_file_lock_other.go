//go:build !unix

package minipulsar

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDataDir only creates dir/LOCK where flock is not available: there the
// caller must make sure that one broker uses a data directory.
func lockDataDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("minipulsar: %w", err)
	}
	return f, nil
}

// syncDir does nothing where directories cannot be opened for fsync.
func syncDir(string) error { return nil }
