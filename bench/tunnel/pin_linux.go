package main

import (
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinSelf restricts every thread of this process to one CPU; threads started later inherit it.
func pinSelf(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	runtime.GOMAXPROCS(1)
	return setAffinity(&set)
}

// setAffinity gives every thread of this process the CPU set.
func setAffinity(set *unix.CPUSet) error {
	// Twice: a thread started by a not yet moved thread during the first pass is caught by the second.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
				return err
			}
		}
	}
	return nil
}
