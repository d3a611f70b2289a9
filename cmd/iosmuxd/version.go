package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// devVersion is the version of a build that carries no module version (go test, go run).
const devVersion = "0.1.0-dev"

// buildInfo is what a build says about itself: the module version and the VCS stamp.
type buildInfo struct {
	Version   string // module version, or devVersion
	Revision  string // vcs.revision, "" when the build was not stamped
	Time      string // vcs.time
	Modified  bool   // vcs.modified: built from a tree with uncommitted changes
	GoVersion string
}

// readBuildInfo reads the running binary's build info.
func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildInfo{Version: devVersion}
	}
	return parseBuildInfo(bi)
}

// parseBuildInfo picks the fields iosmuxd reports out of a build info.
func parseBuildInfo(bi *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if b.Version == "" || b.Version == "(devel)" {
		b.Version = devVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one-line version: "iosmuxd VERSION (rev REV[, modified], TIME, GOVERSION)".
func (b buildInfo) String() string {
	var parts []string
	if b.Revision != "" {
		rev := "rev " + b.Revision
		if b.Modified {
			rev += ", modified"
		}
		parts = append(parts, rev)
	} else {
		parts = append(parts, "no VCS revision stamped")
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	if b.GoVersion != "" {
		parts = append(parts, b.GoVersion)
	}
	return fmt.Sprintf("iosmuxd %s (%s)", b.Version, strings.Join(parts, ", "))
}

// short is the version the status route reports: the module version and a short revision.
func (b buildInfo) short() string {
	v := b.Version
	if b.Revision != "" && !strings.Contains(v, shortRev(b.Revision)) {
		v += "+" + shortRev(b.Revision)
	}
	if b.Modified && !strings.HasSuffix(v, "+dirty") {
		v += "+dirty"
	}
	return v
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// printVersion is `iosmuxd version` and `iosmuxd --version`.
func printVersion(stdout io.Writer) int {
	fmt.Fprintln(stdout, readBuildInfo())
	return 0
}
