package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
)

// simulate runs one virtual iPhone until SIGINT or SIGTERM.
func simulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rsdAddr := fs.String("rsd", "", "serve the trusted RSD endpoint on `HOST:PORT` (port 0 picks one); its services listen on the same host")
	udid := fs.String("udid", "", "the simulated device's `UDID` (default: the profile's canonical one)")
	prof := fs.String("profile", profile.Default().Name, "device `profile`: "+strings.Join(profile.Names(), ", "))
	untrusted := fs.Bool("untrusted", false, "serve the untrusted RSD inventory (as on the USB link, port 58783) instead of the trusted one")
	lf := addLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: iosmuxd simulate --rsd HOST:PORT [flags]\n\n"+
			"Runs a virtual iPhone and prints each endpoint it serves as a 'NAME ADDRESS' line on stdout.\n"+
			"Stops cleanly on SIGINT or SIGTERM.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *rsdAddr == "" {
		fmt.Fprintln(stderr, "iosmuxd simulate: --rsd HOST:PORT is required")
		fs.Usage()
		return 2
	}
	host, portStr, err := net.SplitHostPort(*rsdAddr)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || port < 0 || port > 65535 {
		fmt.Fprintf(stderr, "iosmuxd simulate: --rsd %q: want HOST:PORT\n", *rsdAddr)
		return 2
	}
	p, err := profile.ByName(*prof)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd simulate: %v\n", err)
		return 2
	}
	log := lf.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dev := sim.NewDevice(p, *udid, log)
	r, err := dev.ServeRSD(ctx, sim.TCPListen(host), port, sim.RSDOptions{Untrusted: *untrusted})
	if err != nil {
		log.Error("simulator failed to start", "err", err)
		return 1
	}
	fmt.Fprintf(stdout, "udid %s\nrsd %s\n", dev.UDID, r.Addr())
	if s, ok := stdout.(interface{ Sync() error }); ok {
		s.Sync()
	}
	<-ctx.Done()
	log.Info("stopping simulator")
	r.Close()
	return 0
}
