//go:build !unix

package spool

import (
	"fmt"
	"os"
	"path/filepath"
)

const lockName = "LOCK"

// lockDir only creates dir/LOCK where flock is not available: on such
// systems the caller must make sure one process opens a spool directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}
