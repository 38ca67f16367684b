package minipulsar

import (
	"errors"
	"log/slog"
)

// openFileStore opens (or creates) the persistent store in dir.
func openFileStore(dir string, log *slog.Logger) (store, *snapshot, error) {
	return nil, nil, errors.New("minipulsar: persistence not implemented yet")
}
