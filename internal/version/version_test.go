package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	buildInfo := func(mainVersion string, settings ...debug.BuildSetting) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Main: debug.Module{Version: mainVersion}, Settings: settings}, true
		}
	}
	noInfo := func() (*debug.BuildInfo, bool) { return nil, false }
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}
	dirty := []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}
	tests := []struct {
		name         string
		ver, rev     string
		read         func() (*debug.BuildInfo, bool)
		wantVersion  string
		wantRevision string
	}{
		{"stamped wins", "v1.2.3", "fff000", buildInfo("v9.9.9", vcs...), "v1.2.3", "fff000"},
		{"nothing at all", "", "", noInfo, "devel", "unknown"},
		{"plain go build", "", "", buildInfo("(devel)"), "devel", "unknown"},
		{"vcs info", "", "", buildInfo("(devel)", vcs...), "devel", "abc123"},
		{"dirty tree", "", "", buildInfo("(devel)", dirty...), "devel", "abc123-dirty"},
		{"go install module@version", "", "", buildInfo("v1.0.0"), "v1.0.0", "unknown"},
		{"version stamped, revision from vcs", "v2.0.0", "", buildInfo("(devel)", vcs...), "v2.0.0", "abc123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.ver, tt.rev, tt.read)
			if got.Version != tt.wantVersion || got.Revision != tt.wantRevision || got.GoVersion != runtime.Version() {
				t.Fatalf("resolve = %+v, want version %q revision %q go %q", got, tt.wantVersion, tt.wantRevision, runtime.Version())
			}
		})
	}
}

func TestString(t *testing.T) {
	got := Info{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26.0"}.String()
	if want := "pulsar-sidecar v1.2.3 (revision abc, go1.26.0)"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}
