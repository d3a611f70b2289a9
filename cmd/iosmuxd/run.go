package main

import (
	"fmt"
	"io"
)

const usage = `iosmuxd — iOS 17+ device tunnel daemon (a pymobiledevice3 tunneld replacement).

Usage:
  iosmuxd simulate [flags]   run a virtual iPhone and print its endpoints
  iosmuxd help [command]     show help

Run 'iosmuxd help simulate' for the simulator's flags.
`

// run dispatches the subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "simulate":
		return simulate(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		if len(args) > 1 && args[1] == "simulate" {
			return simulate([]string{"-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "iosmuxd: unknown command %q\n\n%s", args[0], usage)
	return 2
}
