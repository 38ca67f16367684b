// Package layout holds the test that keeps the dependency diagram of ADR
// 070 true: every package of the module sits in one layer and imports only
// packages of lower layers.
package layout

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/pulsar-sidecar/pulsar-sidecar"

// layers is ADR 070's diagram, bottom first. A package imports only
// packages of lower layers (its own sub-packages aside, such as
// minipulsar/internal/wirepb); tests may import anything.
var layers = [][]string{
	// Leaves: plumbing, wire formats, stores, the test broker.
	{"internal/accesslog", "internal/config", "internal/embedredis", "internal/fakeclock", "internal/jsonenc", "internal/testcert", "internal/testredis", "internal/version",
		"internal/wire", "internal/apierr", "internal/group", "internal/pulsaradm",
		"openapi", "tagfilter", "spool", "console-api/web", "minipulsar", "minipulsar/internal/wirepb", "minipulsar/conformance"},
	// Over the leaves: metrics conventions, the trace pipeline (it runs
	// its goroutines on internal/group) and the trace store's
	// Elasticsearch fake.
	{"internal/metrics", "tracer", "tracer/esfake"},
	// The trace store's contract suite (it drives tracer's stores).
	{"tracer/storetest"},
	// The delay engine.
	{"delay"},
	// The produce types and the producer pool.
	{"produce"},
	// Senders and services built on them.
	{"durable", "consume", "console-api"},
	// The data-plane HTTP API.
	{"proxy"},
	// The composition root.
	{"app"},
	// Mains and deployment tests.
	{"cmd/pulsar-sidecar", "cmd/minipulsar", "cmd/pscload", "charts", "internal/layout", "internal/errdocs", "test/crash"},
}

func TestNoImportRunsUp(t *testing.T) {
	layer := map[string]int{}
	for i, l := range layers {
		for _, p := range l {
			layer[p] = i
		}
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		from, ok := layer[pkg]
		if !assert.True(t, ok, "package %s is in no layer: add it to ADR 070's diagram and to layers here", pkg) {
			continue
		}
		for _, imp := range f[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if strings.HasPrefix(dep, pkg+"/") {
				continue // its own sub-package
			}
			to, ok := layer[dep]
			assert.True(t, ok && to < from, "%s (layer %d) imports %s (layer %d): imports run down only (ADR 070)", pkg, from, dep, to)
		}
	}
}
