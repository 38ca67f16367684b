package tagfilter

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the expected output of testdata/*.txt golden files")

// goldenSep separates the input expression (which may span lines) from the
// expected output in a golden file.
const goldenSep = "----\n"

// TestGolden compiles the input of every testdata/*.txt file and compares
// the canonical form, tags and MatchAll (or the error) with the expected
// output below the separator. Run with -update to rewrite the expectations
// after a deliberate change, then review the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			input, want := readGolden(t, file)
			got := describe(input)
			if *update {
				require.NoError(t, os.WriteFile(file, []byte(input+"\n"+goldenSep+got), 0o644))
				return
			}
			require.Equal(t, want, got)
		})
	}
}

// readGolden splits a golden file at its first separator line. The newline
// before the separator is not part of the input.
func readGolden(t *testing.T, file string) (input, want string) {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	s := string(data)
	if rest, ok := strings.CutPrefix(s, goldenSep); ok {
		return "", rest
	}
	input, want, ok := strings.Cut(s, "\n"+goldenSep)
	require.True(t, ok, "%s: no %q separator line", file, strings.TrimSpace(goldenSep))
	return input, want
}

// describe renders what Compile makes of input, for golden files.
func describe(input string) string {
	f, err := Compile(input)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "canonical: %s\ntags:", f)
	for _, tag := range f.Tags() {
		b.WriteString(" " + tag)
	}
	fmt.Fprintf(&b, "\nmatchAll: %t\n", f.MatchAll())
	return b.String()
}
