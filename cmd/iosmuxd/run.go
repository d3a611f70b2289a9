package main

import (
	"fmt"
	"io"
)

const usage = `iosmuxd — iOS 17+ device tunnel daemon (a pymobiledevice3 tunneld replacement).

Usage:
  iosmuxd [flags]                      serve: find devices, open tunnels, serve the API on 127.0.0.1:49151
  iosmuxd --simulate [flags]           the same, against the built-in virtual iPhone (no phone, no root)
  iosmuxd list [--api ADDR]            list published tunnels (the API's GET /)
  iosmuxd status [--api ADDR]          show every device's state (GET /iosmux/status)
  iosmuxd pair [--udid UDID] [flags]   pair with a device (it shows Trust) and keep the record
  iosmuxd import-pair-record FILE      keep a copy of a pair record from another tool
  iosmuxd simulate [flags]             run only a virtual iPhone and print its endpoints
  iosmuxd version                      print the version and the build's VCS revision (also --version)
  iosmuxd help [command]               show help (iosmuxd help serve lists the daemon's flags)
`

// run dispatches the subcommand and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		return printVersion(stdout)
	}
	if len(args) == 0 || len(args[0]) > 0 && args[0][0] == '-' && !isHelp(args[0]) {
		return serve(args, stdout, stderr)
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "list":
		return list(args[1:], stdout, stderr, "/")
	case "status":
		return list(args[1:], stdout, stderr, "/iosmux/status")
	case "pair":
		return pair(args[1:], stdout, stderr)
	case "import-pair-record":
		return importRecord(args[1:], stdout, stderr)
	case "simulate":
		return simulate(args[1:], stdout, stderr)
	case "help", "-h", "--help", "-help":
		if len(args) > 2 {
			fmt.Fprintf(stderr, "iosmuxd help: want at most one command, got %q\n", args[1:])
			return 2
		}
		if len(args) > 1 {
			switch args[1] {
			case "simulate", "serve", "list", "status", "pair", "import-pair-record":
				return run([]string{args[1], "-h"}, stdout, stdout)
			}
			fmt.Fprintf(stderr, "iosmuxd help: unknown command %q\n", args[1])
			return 2
		}
		return serve([]string{"-h"}, stdout, stdout)
	}
	fmt.Fprintf(stderr, "iosmuxd: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }
