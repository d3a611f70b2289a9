package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/daemon"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/pairrecord"
)

// parseFlags parses a subcommand's flags; it returns an exit code when the command should stop.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string, stderr io.Writer) (int, bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

// list prints one of the API's JSON routes.
func list(args []string, stdout, stderr io.Writer, path string) int {
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	addr := fs.String("api", api.DefaultAddr, "the daemon's API `ADDR`")
	name := map[string]string{"/": "list", "/iosmux/status": "status"}[path]
	if code, stop := parseFlags(fs, args, "iosmuxd "+name+" [--api HOST:PORT]", stderr); stop {
		return code
	}
	if err := checkAPIAddr(*addr); err != nil {
		fmt.Fprintf(stderr, "iosmuxd %s: %v\n", name, err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iosmuxd %s: unexpected argument %q\n", name, fs.Arg(0))
		return 2
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + *addr + path)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd %s: is iosmuxd running? %v\n", name, err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "iosmuxd %s: %s %v\n", name, resp.Status, err)
		return 1
	}
	stdout.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		fmt.Fprintln(stdout)
	}
	return 0
}

// pair pairs with a device (lockdown through usbmuxd, or RemotePairing at an address) and
// keeps the record in iosmux's store.
func pair(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pair", flag.ContinueOnError)
	udid := fs.String("udid", "", "the device's `UDID` (default: the only device attached)")
	usbmux := fs.String("usbmux", "", "usbmuxd `ADDR` (unix:PATH or tcp:HOST:PORT)")
	device := fs.String("device", "", "RemotePairing: the device's untrusted RSD at `HOST:PORT` (USB network interface, port 58783) instead of usbmuxd")
	remote := fs.String("remotepairing", "", "RemotePairing: the device's RPPairing port at `HOST:PORT` (Wi-Fi) instead of usbmuxd")
	stateDir := fs.String("state-dir", "", "iosmux's pair-record `DIR`")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for Trust on the device")
	pin := fs.String("pin", "", "RemotePairing: the `PIN` the device shows for pairing (Apple TV)")
	if code, stop := parseFlags(fs, args, "iosmuxd pair [--udid UDID] [--usbmux ADDR | --device HOST:PORT | --remotepairing HOST:PORT [--pin PIN]]", stderr); stop {
		return code
	}
	if *pin != "" {
		if *device == "" && *remote == "" {
			fmt.Fprintln(stderr, "iosmuxd pair: --pin is for RemotePairing (--device or --remotepairing)")
			return 2
		}
		if err := pairing.CheckPIN(*pin); err != nil {
			fmt.Fprintf(stderr, "iosmuxd pair: --pin: %v\n", err)
			return 2
		}
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "iosmuxd pair: --timeout %v: want a positive duration\n", *timeout)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *device != "" || *remote != "" {
		return pairRemote(ctx, daemon.Device{UDID: *udid, RSDAddr: *device, PairingAddr: *remote}, *stateDir, *timeout, *pin, stdout, stderr)
	}
	mux, err := lockdown.NewMux(*usbmux)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd pair: %v\n", err)
		return 2
	}
	dev, err := findDevice(ctx, mux, *udid)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd pair: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "pairing with %s: tap Trust on the device if it asks\n", dev.UDID)
	rec, err := mux.Pair(ctx, dev, lockdown.PairOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd pair: %v\n", err)
		return 1
	}
	store, err := openStore(*stateDir)
	if err == nil {
		err = store.Save(dev.UDID, rec)
	}
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd pair: paired, but keeping the record failed: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "paired %s; record kept in %s\n", dev.UDID, store.Dir())
	return 0
}

// pairRemote pairs over RemotePairing with the device at dev's address.
func pairRemote(ctx context.Context, dev daemon.Device, stateDir string, timeout time.Duration, pin string, stdout, stderr io.Writer) int {
	if dev.RSDAddr != "" && dev.PairingAddr != "" {
		fmt.Fprintln(stderr, "iosmuxd pair: give one of --device and --remotepairing")
		return 2
	}
	for _, a := range []string{dev.RSDAddr, dev.PairingAddr} {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			fmt.Fprintf(stderr, "iosmuxd pair: %q: want HOST:PORT\n", a)
			return 2
		}
	}
	store, err := openStore(stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd pair: %v\n", err)
		return 1
	}
	r := &daemon.RemotePairing{Store: store, Pair: true, PairTimeout: timeout, PIN: pin}
	udid, err := r.PairDevice(ctx, dev, func(stage string) {
		if strings.HasPrefix(stage, daemon.StagePairing) {
			fmt.Fprintf(stderr, "%s\n", strings.TrimPrefix(stage, daemon.StagePairing+": "))
		}
	})
	switch {
	case errors.Is(err, pairing.ErrPINRequired):
		fmt.Fprintln(stderr, "iosmuxd pair: the device shows a PIN for pairing: run again with --pin PIN")
		return 1
	case errors.Is(err, pairing.ErrWrongPIN):
		fmt.Fprintln(stderr, "iosmuxd pair: the device refused the PIN: check it on the device's screen and try again")
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "iosmuxd pair: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "paired %s over RemotePairing; record kept in %s\n", udid, store.Dir())
	return 0
}

func findDevice(ctx context.Context, mux *lockdown.Mux, udid string) (lockdown.Device, error) {
	if udid != "" {
		return mux.FindDevice(ctx, udid)
	}
	devs, err := mux.ListDevices(ctx)
	if err != nil {
		return lockdown.Device{}, err
	}
	// A phone listed twice (USB and Network) is one device: FindDevice picks its USB entry.
	udids := map[string]bool{}
	for _, d := range devs {
		udids[strings.ToUpper(strings.ReplaceAll(d.UDID, "-", ""))] = true
	}
	if len(udids) != 1 {
		return lockdown.Device{}, fmt.Errorf("%d devices attached: name one with --udid", len(udids))
	}
	return mux.FindDevice(ctx, devs[0].UDID)
}

func openStore(dir string) (*pairrecord.Store, error) {
	if dir == "" {
		d, err := pairrecord.DefaultStoreDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	return pairrecord.OpenStore(dir)
}

// importRecord copies a pair record file (libimobiledevice, pymobiledevice3, usbmuxd) into the store.
func importRecord(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import-pair-record", flag.ContinueOnError)
	udid := fs.String("udid", "", "the device's `UDID` (default: the file's name without .plist)")
	stateDir := fs.String("state-dir", "", "iosmux's pair-record `DIR`")
	if code, stop := parseFlags(fs, args, "iosmuxd import-pair-record [--udid UDID] FILE", stderr); stop {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file := fs.Arg(0)
	if *udid != "" && !looksLikeUDID(*udid) {
		fmt.Fprintf(stderr, "iosmuxd import-pair-record: --udid %q is not a device UDID\n", *udid)
		return 2
	}
	rec, err := pairrecord.LoadFile(file)
	if err == nil {
		err = rec.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd import-pair-record: %s is no usable pair record: %v\n", file, err)
		return 1
	}
	id := *udid
	if id == "" && looksLikeUDID(rec.UDID) {
		id = rec.UDID
	}
	if name := strings.TrimSuffix(filepath.Base(file), ".plist"); id == "" && looksLikeUDID(name) {
		id = name
	}
	if id == "" {
		fmt.Fprintf(stderr, "iosmuxd import-pair-record: cannot tell the device's UDID from %s (neither the record nor the file name has one): pass --udid\n", file)
		return 2
	}
	store, err := openStore(*stateDir)
	if err == nil {
		err = store.Save(id, rec)
	}
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd import-pair-record: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported the pair record of %s into %s\n", id, store.Dir())
	return 0
}

// looksLikeUDID reports whether s has the shape of a device UDID: 40 hex digits (before the
// iPhone XS), or 8 and 16 hex digits with or without the dash between them.
func looksLikeUDID(s string) bool {
	hex := func(t string) bool {
		for _, c := range t {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
		return true
	}
	switch {
	case len(s) == 40, len(s) == 24:
		return hex(s)
	case len(s) == 25 && s[8] == '-':
		return hex(s[:8]) && hex(s[9:])
	}
	return false
}
