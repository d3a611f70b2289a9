package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iosmux/iosmux/api"
	"github.com/iosmux/iosmux/daemon"
	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/pairrecord"
	"github.com/iosmux/iosmux/sim"
	"github.com/iosmux/iosmux/sim/profile"
	"github.com/iosmux/iosmux/tunnel"
)

// serveFlags are the daemon's flags.
type serveFlags struct {
	api, usbmux, stateDir, backend, shim, profile, probe string
	goiosAPI, protocol                                   string
	udids, upstreamHosts                                 []string
	simulate, noPair, noUsbmux, coalesce                 bool
	devicesByHand                                        []string
	devices, mtu, mtuClamp                               int
	liveness, livenessTimeout                            time.Duration
	log                                                  *logFlags
	discovery                                            *discoveryFlags
}

func newServeFlags(fs *flag.FlagSet) *serveFlags {
	f := &serveFlags{}
	fs.StringVar(&f.api, "api", api.DefaultAddr, "serve the HTTP API on `HOST:PORT` (loopback only)")
	fs.StringVar(&f.usbmux, "usbmux", "", "usbmuxd `ADDR`: unix:PATH, UNIX:PATH, unix:///PATH, /PATH, tcp:HOST:PORT, tcp://HOST:PORT or HOST:PORT (default $USBMUXD_SOCKET_ADDRESS, else /var/run/usbmuxd)")
	fs.Func("device", "a device whose RSD endpoint is already reachable at `IP:PORT` (another tool's tunnel, a USB link-local address); repeatable", func(v string) error {
		if _, err := netip.ParseAddrPort(v); err != nil {
			return fmt.Errorf("want IP:PORT ([v6]:port for IPv6): %w", err)
		}
		f.devicesByHand = append(f.devicesByHand, v)
		return nil
	})
	fs.Func("udid", "serve only the device `UDID` (with or without its dash); repeatable", func(v string) error {
		f.udids = append(f.udids, v)
		return nil
	})
	fs.Func("upstream-host", "a `HOST` besides loopback whose tunneld API POST /upstream may register; repeatable", func(v string) error {
		f.upstreamHosts = append(f.upstreamHosts, v)
		return nil
	})
	fs.StringVar(&f.goiosAPI, "goios-api", "", "also serve go-ios's tunnel-agent API on `ADDR` (loopback, e.g. 127.0.0.1:60105); off when empty")
	fs.BoolVar(&f.noUsbmux, "no-usbmux", false, "do not watch usbmuxd (only --device addresses)")
	fs.BoolVar(&f.simulate, "simulate", false, "run against the built-in virtual iPhone instead of a real usbmuxd")
	fs.IntVar(&f.devices, "devices", 1, "with --simulate: how many virtual iPhones to plug in")
	fs.StringVar(&f.profile, "profile", profile.Default().Name, "with --simulate: device `profile`")
	fs.StringVar(&f.backend, "backend", "auto", "tunnel network backend: kernel (Linux TUN, needs CAP_NET_ADMIN, not full root; macOS utun, needs root), userspace, or auto (kernel when this process may create one)")
	fs.StringVar(&f.shim, "shim", "auto", "advertise loopback shim endpoints: on, off, or auto (on with the userspace backend)")
	fs.StringVar(&f.stateDir, "state-dir", "", "iosmux's pair-record `DIR` (default /var/lib/iosmux/lockdown as root, else ~/.config/iosmux/lockdown)")
	fs.BoolVar(&f.noPair, "no-pair", false, "never pair on its own; devices without a pair record they accept wait in 'needs pairing'")
	fs.IntVar(&f.mtu, "mtu", tunnel.DefaultRequestMTU, "MTU to request in the CDTunnel handshake")
	fs.BoolVar(&f.coalesce, "coalesce", false, "let several packets to the device share one TLS record and write (faster; off because pymobiledevice3 measured USB CoreDeviceProxy breaking with it, which is unconfirmed)")
	fs.StringVar(&f.protocol, "protocol", daemon.ProtocolTCP, "RemotePairing tunnel transport (devices reached by an untrusted RSD or Wi-Fi): tcp (TLS-PSK, every iOS 17+) or quic (iOS 17.0-18.1 only)")
	fs.IntVar(&f.mtuClamp, "mtu-clamp", tunnel.CoreDeviceProxyDropAbove, "cap the tunnel MTU (USB CoreDeviceProxy drops larger host-to-device packets); 0 = off")
	fs.DurationVar(&f.liveness, "liveness", daemon.DefaultLivenessInterval, "how often a published tunnel is probed")
	fs.DurationVar(&f.livenessTimeout, "liveness-timeout", daemon.DefaultLivenessTimeout, "how long one probe may take; two failed probes in a row rebuild the tunnel")
	fs.StringVar(&f.probe, "liveness-probe", "ping", "how a tunnel is probed: ping (ICMPv6 echo through the tunnel) or rsd (a whole RSD handshake, as before; costly)")
	f.log = addLogFlags(fs)
	f.discovery = addDiscoveryFlags(fs)
	return f
}

// geteuid is os.Geteuid; tests replace it to check the non-root refusals.
var geteuid = os.Geteuid

// kernelLack is kernelPrivilege; tests replace it to check the refusals without it.
var kernelLack = kernelPrivilege

// setup is what the flags resolve to.
type setup struct {
	backend   tunnel.Backend
	userspace bool
	shim      bool
	probe     func(context.Context, daemon.Tunnel) error
}

// resolve checks every flag before anything starts and says what they select; its error is
// one line naming the flag.
func (f *serveFlags) resolve() (setup, error) {
	var s setup
	if err := f.log.validate(); err != nil {
		return s, err
	}
	if err := checkAPIAddr(f.api); err != nil {
		return s, err
	}
	if _, _, err := lockdown.ParseSocketAddress(f.usbmux); err != nil && !f.simulate {
		return s, fmt.Errorf("--usbmux: %w", err)
	}
	lack := kernelLack() // "" when this process may create TUNs (CAP_NET_ADMIN on Linux)
	root := lack == ""
	switch f.backend {
	case "kernel":
		if !tunnel.KernelSupported {
			return s, fmt.Errorf("--backend kernel: no kernel TUN support on %s yet; use --backend userspace", runtime.GOOS)
		}
		if !root {
			return s, fmt.Errorf("--backend kernel: %s", lack)
		}
		s.backend = tunnel.Kernel{}
	case "userspace":
		s.backend = tunnel.Userspace{}
	case "auto":
		if root && tunnel.KernelSupported { // Linux TUN, macOS utun
			s.backend = tunnel.Kernel{}
		} else {
			s.backend = tunnel.Userspace{}
		}
	default:
		return s, fmt.Errorf("--backend %q: want kernel, userspace or auto", f.backend)
	}
	_, s.userspace = s.backend.(tunnel.Userspace)
	switch f.shim {
	case "on":
		s.shim = true
	case "off":
		if s.userspace {
			return s, fmt.Errorf("--shim off needs the kernel backend: a userspace tunnel is reachable only through shims")
		}
	case "auto":
		s.shim = s.userspace
	default:
		return s, fmt.Errorf("--shim %q: want on, off or auto", f.shim)
	}
	switch f.probe {
	case "ping":
		s.probe = daemon.Ping
	case "rsd":
		s.probe = daemon.CheckRSD
	default:
		return s, fmt.Errorf("--liveness-probe %q: want ping or rsd", f.probe)
	}
	if f.liveness <= 0 {
		return s, fmt.Errorf("--liveness %v: want a positive duration", f.liveness)
	}
	if f.livenessTimeout <= 0 {
		return s, fmt.Errorf("--liveness-timeout %v: want a positive duration", f.livenessTimeout)
	}
	if f.mtu < tunnel.MinMTU || f.mtu > 0xffff {
		return s, fmt.Errorf("--mtu %d: want %d to 65535", f.mtu, tunnel.MinMTU)
	}
	if f.protocol != daemon.ProtocolTCP && f.protocol != daemon.ProtocolQUIC {
		return s, fmt.Errorf("--protocol %q: want tcp or quic", f.protocol)
	}
	if f.mtuClamp != 0 && (f.mtuClamp < tunnel.MinMTU || f.mtuClamp > 0xffff) {
		return s, fmt.Errorf("--mtu-clamp %d: want 0 (off) or %d to 65535", f.mtuClamp, tunnel.MinMTU)
	}
	if usbNet, wifi := f.discovery.on(f.simulate); f.noUsbmux && !f.simulate && len(f.devicesByHand) == 0 && !usbNet && !wifi {
		return s, fmt.Errorf("--no-usbmux without --device or discovery: no device source left")
	}
	if f.simulate {
		if f.devices < 1 {
			return s, fmt.Errorf("--devices %d: want at least 1", f.devices)
		}
		if _, err := profile.ByName(f.profile); err != nil {
			return s, fmt.Errorf("--profile: %w", err)
		}
	}
	return s, nil
}

// checkAPIAddr accepts HOST:PORT with an IP literal or localhost: no URL, no name to look up.
func checkAPIAddr(addr string) error {
	if strings.Contains(addr, "://") {
		return fmt.Errorf("--api %q: want HOST:PORT, not a URL", addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--api %q: want HOST:PORT", addr)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("--api %q: bad port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--api %q: the API is on loopback only (127.0.0.1, ::1 or localhost)", addr)
	}
	return nil
}

// serve runs the daemon until SIGINT, SIGTERM or the API's /shutdown.
func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("iosmuxd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := newServeFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage+"\nDaemon flags (iosmuxd [flags]):\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "iosmuxd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, err := f.resolve(); err != nil {
		fmt.Fprintf(stderr, "iosmuxd: %v\n", err)
		return 2
	}
	log := f.log.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ln, err := api.Listen(f.api)
	if err != nil {
		log.Error("iosmuxd cannot start", "err", err)
		return 1
	}
	if err := runDaemon(ctx, f, ln, log); err != nil {
		log.Error("iosmuxd stopped", "err", err)
		return 1
	}
	return 0
}

// runDaemon wires the sources, the opener, the manager and the API served on ln.
func runDaemon(ctx context.Context, f *serveFlags, ln net.Listener, log *slog.Logger) error {
	defer ln.Close()
	s, err := f.resolve()
	if err != nil {
		return err
	}
	if s.userspace && f.backend == "auto" {
		if geteuid() != 0 {
			log.Info("no kernel TUN privilege: using the userspace network stack; clients reach devices through loopback shims", "why", kernelLack())
		} else {
			log.Info("no kernel TUN support on this system yet: using the userspace network stack; clients reach devices through loopback shims", "os", runtime.GOOS)
		}
	}
	usbmuxAddr := f.usbmux
	if f.simulate {
		addr, cleanup, err := startSimulator(ctx, f, log)
		if err != nil {
			return err
		}
		defer cleanup()
		usbmuxAddr = addr
	}
	mux, err := lockdown.NewMux(usbmuxAddr)
	if err != nil {
		return err
	}
	stateDir := f.stateDir
	if stateDir == "" {
		if stateDir, err = pairrecord.DefaultStoreDir(); err != nil {
			return err
		}
	}
	store, err := pairrecord.OpenStore(stateDir)
	if err != nil {
		return err
	}
	src := daemon.UsbmuxSource{Mux: mux}
	var sources []daemon.Source
	if !f.noUsbmux || f.simulate {
		sources = append(sources, src)
	}
	for _, a := range f.devicesByHand {
		sources = append(sources, daemon.AddressSource{Addr: a})
	}
	found, pairable := f.discovery.sources(f.simulate, store, log)
	sources = append(sources, found...)
	if len(f.udids) > 0 {
		for i, s := range sources {
			sources[i] = daemon.OnlyUDIDs{Source: s, UDIDs: f.udids}
		}
		log.Info("serving only the listed devices", "udid", f.udids)
	}
	opener := &daemon.CoreDeviceProxy{
		Muxes: map[string]*lockdown.Mux{src.Name(): mux}, Store: store,
		Imports: []pairrecord.Source{pairrecord.Libimobiledevice(), pairrecord.Pymobiledevice3()},
		Pair:    !f.noPair, Backend: s.backend, RequestMTU: f.mtu, MTUClamp: f.mtuClamp, Coalesce: f.coalesce, Log: log,
	}
	if f.simulate {
		opener.Imports = nil // the virtual devices are unknown to the host's other tools
	}
	// MTUClamp is CoreDeviceProxy's USB drop (tunnel.md §6), not a RemotePairing limit.
	remote := &daemon.RemotePairing{Store: store, ImportPymobiledevice3: !f.simulate, Pair: !f.noPair,
		Protocol: f.protocol, Backend: s.backend, RequestMTU: f.mtu, Log: log}
	m := daemon.New(daemon.Config{Open: daemon.Openers(opener.Open, remote.Open), Sources: sources, Log: log,
		Shim: s.shim, HostUUID: store.HostUUID, LivenessInterval: f.liveness, LivenessTimeout: f.livenessTimeout, Probe: s.probe, Version: readBuildInfo().short(), Pairable: pairable})
	// The manager first, the API once it is ready: no request sees a half-started daemon.
	runErr := make(chan error, 1)
	go func() { runErr <- m.Run(ctx) }()
	<-m.Ready()
	srv := api.NewServer(api.NewWithOptions(m, log, api.Options{UpstreamHosts: f.upstreamHosts}), log)
	go srv.Serve(ln)
	if f.goiosAPI != "" {
		gln, err := api.Listen(f.goiosAPI)
		if err != nil {
			return fmt.Errorf("--goios-api: %w", err)
		}
		gsrv := api.NewServer(api.NewGoIOS(m, log), log)
		go gsrv.Serve(gln)
		defer gsrv.Close()
		log.Info("serving go-ios's tunnel-agent API", "addr", "http://"+gln.Addr().String())
	}
	log.Info("iosmuxd serving", "api", "http://"+ln.Addr().String(), "usbmuxd", mux.String(),
		"backend", map[bool]string{true: "userspace", false: "kernel"}[s.userspace], "shim", s.shim,
		"liveness_probe", f.probe, "pair_records", store.Dir())
	err = <-runErr
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	log.Info("iosmuxd stopped")
	return err
}

// startSimulator runs the virtual iPhones behind a simulated usbmuxd on a private socket; the
// returned cleanup stops them and removes the socket and the virtual pair records.
func startSimulator(ctx context.Context, f *serveFlags, log *slog.Logger) (string, func(), error) {
	p, err := profile.ByName(f.profile)
	if err != nil {
		return "", nil, err
	}
	dir, err := newSimDir()
	if err != nil {
		return "", nil, err
	}
	u := sim.NewUsbmuxd(ctx, sim.UsbmuxdOptions{Log: log.With("component", "sim")})
	cleanup := func() {
		u.Close()
		os.RemoveAll(dir)
	}
	sock := filepath.Join(dir, "usbmuxd")
	if _, err := u.ListenUnix(sock); err != nil {
		cleanup()
		return "", nil, err
	}
	for i := range f.devices {
		d := sim.NewDevice(p, simSeed(i, ""), log.With("component", "sim"))
		u.Plug(d)
		log.Info("virtual iPhone plugged in", "udid", d.UDID, "product", d.ProductType, "ios", d.ProductVersion)
	}
	if f.stateDir == "" {
		f.stateDir = filepath.Join(dir, "lockdown") // never mix virtual devices into the real store
	}
	return "unix:" + sock, cleanup, nil
}
