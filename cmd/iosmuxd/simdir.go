package main

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// simDirPrefix names the private directories of --simulate runs (usbmuxd socket, the virtual
// phones' pair records with their private keys): <prefix><pid>-<random> in the temp dir.
const simDirPrefix = "iosmux-sim-"

// newSimDir makes this run's private directory after removing those of earlier runs whose
// process is gone (a run killed with SIGKILL cannot clean up after itself).
func newSimDir() (string, error) {
	removeStaleSimDirs(os.TempDir())
	return os.MkdirTemp("", simDirPrefix+strconv.Itoa(os.Getpid())+"-")
}

// removeStaleSimDirs removes dir's simulator directories that belong to this user and to a
// process that no longer runs.
func removeStaleSimDirs(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), simDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if fi, err := os.Lstat(path); err != nil || !ownedByMe(fi) {
			continue
		}
		os.RemoveAll(path)
	}
}

// processAlive reports whether pid names a running process (or one we may not signal).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownedByMe reports whether a file belongs to the current user.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Getuid()
}
