package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairing"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
)

// trustModes maps --trust values to the simulated device's answer to Pair.
var trustModes = map[string]sim.TrustMode{
	"accept": sim.TrustAccept, "after-prompt": sim.TrustAfterPrompt, "deny": sim.TrustDeny,
	"never": sim.TrustNever, "locked": sim.TrustLocked,
}

// simulate runs virtual iPhones until SIGINT or SIGTERM.
func simulate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rsdAddr := fs.String("rsd", "", "serve the trusted RSD endpoint directly on `HOST:PORT` (port 0 picks one); its services listen on the same host")
	usbmuxd := fs.String("usbmuxd", "", "serve the phones behind a usbmuxd on `ADDR`: unix:PATH (also UNIX:, unix://, /PATH) or tcp:HOST:PORT (also tcp://, HOST:PORT); a socket another process serves is refused")
	network := fs.Bool("network", false, "with --usbmuxd: list every phone twice, over USB and over Network (as for a phone also synced over Wi-Fi)")
	control := fs.String("control", "", "with --usbmuxd: serve a control endpoint on loopback `HOST:PORT` to forget pairings, blackhole tunnels, plug and unplug (see iosmuxd help simulate)")
	udid := fs.String("udid", "", "the first simulated device's `UDID` (default: the profile's canonical one)")
	devices := fs.Int("devices", 1, "with --usbmuxd: how many phones to plug in")
	prof := fs.String("profile", profile.Default().Name, "device `profile`: "+strings.Join(profile.Names(), ", "))
	trust := fs.String("trust", "accept", "how the phones answer pairing: accept, after-prompt, deny, never, locked")
	drop := fs.Bool("drop-large", false, "drop host-to-device tunnel packets above 8192 bytes, as a real USB device does")
	untrusted := fs.Bool("untrusted", false, "with --rsd: serve the untrusted inventory (as on the USB link, port 58783)")
	remotePairing := fs.String("remotepairing", "", "also serve the first phone's RPPairing port (RemotePairing over the network, as on Wi-Fi) on `HOST:PORT` (port 0 picks one)")
	refuse := fs.String("refuse", "", "createListener refuses this tunnel `PROTOCOL`: quic (as iOS 18.2 and later) or tcp (as an early iOS 17)")
	mdnsIface := fs.String("mdns", "", "advertise the first phone over mDNS on interface `IFACE`: its untrusted RSD (--rsd with --untrusted) as _remoted._tcp, its --remotepairing port as _remotepairing._tcp with its auth tag (and, with --pin, as _remotepairing-manual-pairing._tcp)")
	mdnsTag := fs.String("mdns-auth-tag", "", "with --mdns: advertise this `TAG` instead of the right auth tag (tests of a wrong one)")
	pin := fs.String("pin", "", "RemotePairing pair-setup as on an Apple TV: the first phone shows this `PIN` (4 to 8 digits) instead of a Trust prompt")
	lf := addLogFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: iosmuxd simulate (--rsd HOST:PORT | --usbmuxd unix:PATH|tcp:HOST:PORT | --remotepairing HOST:PORT) [flags]\n\n"+
			"Runs virtual iPhones and prints each endpoint as a 'NAME ADDRESS' line on stdout.\n"+
			"Stops cleanly on SIGINT or SIGTERM.\n\n"+controlUsage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "iosmuxd simulate: "+format+"\n", a...)
		return 2
	}
	if *rsdAddr != "" && *usbmuxd != "" || *rsdAddr == "" && *usbmuxd == "" && *remotePairing == "" {
		fs.Usage()
		return fail("give one of --rsd and --usbmuxd, or --remotepairing")
	}
	if *remotePairing != "" {
		if _, err := splitListenAddr(*remotePairing); err != nil {
			return fail("--remotepairing %q: want HOST:PORT", *remotePairing)
		}
	}
	p, err := profile.ByName(*prof)
	if err != nil {
		return fail("%v", err)
	}
	mode, ok := trustModes[*trust]
	if !ok {
		return fail("--trust %q: want accept, after-prompt, deny, never or locked", *trust)
	}
	if *pin != "" {
		if err := pairing.CheckPIN(*pin); err != nil {
			return fail("--pin: %v", err)
		}
	}
	if *refuse != "" && *refuse != "quic" && *refuse != "tcp" {
		return fail("--refuse %q: want quic or tcp", *refuse)
	}
	if *devices < 1 {
		return fail("--devices %d: want at least 1", *devices)
	}
	if err := lf.validate(); err != nil {
		return fail("%v", err)
	}
	if *control != "" && *usbmuxd == "" {
		return fail("--control needs --usbmuxd")
	}
	if *control != "" {
		if err := checkAPIAddr(*control); err != nil {
			return fail("%v", strings.Replace(err.Error(), "--api", "--control", 1))
		}
	}
	var mdns *simMDNS
	if *mdnsIface != "" {
		if *remotePairing == "" && !(*rsdAddr != "" && *untrusted) {
			return fail("--mdns needs --remotepairing or --rsd with --untrusted")
		}
		mdns = &simMDNS{iface: *mdnsIface, opts: sim.MDNSOptions{AuthTag: *mdnsTag}}
	}
	muxNet, muxAddr := "", ""
	if *usbmuxd != "" {
		if muxNet, muxAddr, err = lockdown.ParseSocketAddress(*usbmuxd); err != nil {
			return fail("--usbmuxd: %v", err)
		}
	}
	log := lf.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	newDevice := func(i int) *sim.Device {
		d := sim.NewDevice(p, simSeed(i, *udid), log)
		d.SetTrust(mode)
		var o sim.TunnelOptions
		if *drop {
			o.DropAbove = tunnel.CoreDeviceProxyDropAbove
		}
		o.RefuseQUIC, o.RefuseTCP = *refuse == "quic", *refuse == "tcp"
		d.SetTunnelOptions(o)
		return d
	}
	first := newDevice(0)
	first.SetRemotePairingPIN(*pin) // checked above
	if *remotePairing != "" {
		ln, err := net.Listen("tcp", *remotePairing)
		if err != nil {
			log.Error("simulator failed to start", "stage", "remotepairing listen", "err", err)
			return 1
		}
		go func() {
			if err := first.ServeRemotePairing(ctx, ln); err != nil {
				log.Error("remotepairing port failed", "err", err)
			}
		}()
		fmt.Fprintf(stdout, "remotepairing %s\n", ln.Addr())
		if mdns != nil {
			mdns.opts.RemotePairingPort = uint16(portOf(ln.Addr()))
			if *pin != "" { // waiting to be paired with a PIN, as an Apple TV
				mdns.opts.ManualPairingPort = mdns.opts.RemotePairingPort
			}
		}
		if *rsdAddr == "" && *usbmuxd == "" {
			if err := mdns.start(ctx, first, 0, false, stdout, log); err != nil {
				return fail("%v", err)
			}
			fmt.Fprintf(stdout, "udid %s\n", first.UDID)
			<-ctx.Done()
			log.Info("stopping simulator")
			return 0
		}
	}
	if *rsdAddr != "" {
		return simulateRSD(ctx, *rsdAddr, first, *untrusted, mdns, stdout, stderr, log)
	}
	u := sim.NewUsbmuxd(ctx, sim.UsbmuxdOptions{Log: log})
	defer u.Close()
	var addr net.Addr
	if muxNet == "unix" {
		addr, err = u.ListenUnix(muxAddr)
	} else {
		addr, err = u.ListenTCP(muxAddr)
	}
	if errors.Is(err, sim.ErrSocketInUse) {
		return fail("--usbmuxd %s: %v", *usbmuxd, sim.ErrSocketInUse)
	}
	if err != nil {
		log.Error("simulator failed to start", "err", err)
		return 1
	}
	var devs []*sim.Device
	for i := range *devices {
		d := first
		if i > 0 {
			d = newDevice(i)
		}
		devs = append(devs, d)
		u.Plug(d)
		if *network {
			u.PlugVia(d, sim.ConnectionTypeNetwork)
		}
		fmt.Fprintf(stdout, "udid %s\n", d.UDID)
	}
	if *control != "" {
		ca, err := serveControl(ctx, *control, u, devs, log)
		if err != nil {
			log.Error("simulator control endpoint failed to start", "err", err)
			return 1
		}
		fmt.Fprintf(stdout, "control http://%s\n", ca)
	}
	if err := mdns.start(ctx, first, 0, false, stdout, log); err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(stdout, "usbmuxd %s:%s\n", addr.Network(), addr)
	<-ctx.Done()
	log.Info("stopping simulator")
	return 0
}

// simSeed is the identity seed of the i-th virtual phone: first (a UDID, or "" for the
// profile's canonical identity) for the first, a derived identity for the others.
func simSeed(i int, first string) string {
	if i == 0 {
		return first
	}
	return fmt.Sprintf("device-%d", i)
}

// splitListenAddr checks a HOST:PORT to listen on (port 0 picks one) and returns the port.
func splitListenAddr(addr string) (int, error) {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("port %q", portStr)
	}
	return port, nil
}

// simulateRSD serves one device's RSD endpoint directly on addr.
func simulateRSD(ctx context.Context, addr string, dev *sim.Device, untrusted bool, mdns *simMDNS, stdout, stderr io.Writer, log *slog.Logger) int {
	host, _, _ := net.SplitHostPort(addr)
	port, err := splitListenAddr(addr)
	if err != nil {
		fmt.Fprintf(stderr, "iosmuxd simulate: --rsd %q: want HOST:PORT\n", addr)
		return 2
	}
	r, err := dev.ServeRSD(ctx, sim.TCPListen(host), port, sim.RSDOptions{Untrusted: untrusted})
	if err != nil {
		log.Error("simulator failed to start", "err", err)
		return 1
	}
	if err := mdns.start(ctx, dev, portOf(r.Addr()), untrusted, stdout, log); err != nil {
		log.Error("simulator failed to start", "err", err)
		r.Close()
		return 1
	}
	fmt.Fprintf(stdout, "udid %s\nrsd %s\n", dev.UDID, r.Addr())
	<-ctx.Done()
	log.Info("stopping simulator")
	r.Close()
	return 0
}
