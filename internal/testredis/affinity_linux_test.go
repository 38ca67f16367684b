package testredis

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCPUsEnv: with PSC_TESTREDIS_CPUS set, the server runs on those CPUs
// only; a malformed value fails the start.
func TestCPUsEnv(t *testing.T) {
	t.Setenv(CPUsEnv, "0")
	s := Start(t)
	s.mu.Lock()
	pid := s.cmd.Process.Pid
	s.mu.Unlock()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	require.Contains(t, strings.ReplaceAll(string(status), "\t", " "), "Cpus_allowed_list: 0\n")

	t.Setenv(CPUsEnv, "x")
	require.ErrorContains(t, pin(os.Getpid()), "want CPU numbers")
}
