// Package version says which build of the sidecar is running: the version
// and revision stamped at build time, with the Go toolchain's own record of
// the commit as a fallback. It is a leaf: cmd/pulsar-sidecar prints it for
// --version, the app logs it at start, and internal/metrics exports it as
// psc_build_info.
//
// Stamp a build with
//
//	go build -ldflags "-X github.com/pulsar-sidecar/pulsar-sidecar/internal/version.version=v1.2.3 \
//	  -X github.com/pulsar-sidecar/pulsar-sidecar/internal/version.revision=$(git rev-parse HEAD)" ./cmd/pulsar-sidecar
//
// (make build-bin and make image do this).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Set with -ldflags -X at build time; empty in a plain `go build`.
var (
	version  string
	revision string
)

// Info describes the running build.
type Info struct {
	// Version is the stamped version ("v1.2.3", or `git describe`'s
	// "v1.2.3-4-gabcdef0"); "devel" when nothing was stamped.
	Version string
	// Revision is the commit: stamped, else the VCS revision Go recorded
	// (go build with -buildvcs), else "unknown". A "-dirty" suffix means
	// the work tree had changes.
	Revision string
	// GoVersion is the toolchain that built the binary (runtime.Version()).
	GoVersion string
}

var (
	once sync.Once
	info Info
)

// Get returns the running build's Info.
func Get() Info {
	once.Do(func() { info = resolve(version, revision, debug.ReadBuildInfo) })
	return info
}

// resolve fills what the linker did not stamp from the build info Go
// embeds: the main module's version (set by `go install module@version`)
// and the vcs.revision and vcs.modified settings.
func resolve(ver, rev string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: ver, Revision: rev, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		if in.Revision == "" {
			var modified bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					in.Revision = s.Value
				case "vcs.modified":
					modified = s.Value == "true"
				}
			}
			if in.Revision != "" && modified {
				in.Revision += "-dirty"
			}
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Revision == "" {
		in.Revision = "unknown"
	}
	return in
}

// String is the one line --version prints:
// "pulsar-sidecar v1.2.3 (revision 0123abc, go1.26.0)".
func (i Info) String() string {
	return fmt.Sprintf("pulsar-sidecar %s (revision %s, %s)", i.Version, i.Revision, i.GoVersion)
}
