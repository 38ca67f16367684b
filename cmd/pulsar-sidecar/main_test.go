package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRunExitCodes(t *testing.T) {
	assert.Equal(t, 0, run([]string{"hash-token", "abc"}))
	assert.Equal(t, 2, run([]string{"hash-token", "a", "b"}))
	assert.Equal(t, 0, run([]string{"--help"}))
	assert.Equal(t, 2, run([]string{"--listen", "0.0.0.0:8088"}), "no apps on a public listener")
	assert.Equal(t, 2, run([]string{"--no-such-flag"}))
	bad := filepath.Join(t.TempDir(), "c.yaml")
	assert.NoError(t, os.WriteFile(bad, []byte("listne: x\n"), 0o600))
	assert.Equal(t, 2, run([]string{"--config", bad}))
}
