package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/iosmux/iosmux/lockdown"
	"github.com/iosmux/iosmux/sim"
)

const controlUsage = `Control endpoint (--control HOST:PORT, loopback only; POST, udid= picks one phone, default all):
  /forget-pairings         the phones forget every paired host (as a reset does)
  /blackhole?on=1|0        tunnels drop everything the host sends, or deliver again
  /unplug?via=USB|Network  remove the phones' usbmuxd entry of that kind
  /plug?via=USB|Network    add it back
`

// serveControl serves the simulator's control endpoint for devs, plugged into u, on addr until
// ctx ends.
func serveControl(ctx context.Context, addr string, u *sim.Usbmuxd, devs []*sim.Device, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	mux := http.NewServeMux()
	each := func(w http.ResponseWriter, r *http.Request, do func(d *sim.Device) error) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		udid, n := r.URL.Query().Get("udid"), 0
		for _, d := range devs {
			if udid != "" && !lockdown.SameUDID(udid, d.UDID) {
				continue
			}
			if err := do(d); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			n++
		}
		if n == 0 {
			http.Error(w, "no such device", http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, "%d device(s)\n", n)
	}
	via := func(r *http.Request) (string, error) {
		switch v := r.URL.Query().Get("via"); v {
		case sim.ConnectionTypeUSB, sim.ConnectionTypeNetwork:
			return v, nil
		default:
			return "", fmt.Errorf("via %q: want USB or Network", v)
		}
	}
	mux.HandleFunc("/forget-pairings", func(w http.ResponseWriter, r *http.Request) {
		each(w, r, func(d *sim.Device) error {
			log.Info("forgetting paired hosts", "udid", d.UDID, "hosts", d.ForgetHosts())
			return nil
		})
	})
	mux.HandleFunc("/blackhole", func(w http.ResponseWriter, r *http.Request) {
		on := r.URL.Query().Get("on") != "0"
		each(w, r, func(d *sim.Device) error { d.SetBlackhole(on); return nil })
	})
	mux.HandleFunc("/unplug", func(w http.ResponseWriter, r *http.Request) {
		each(w, r, func(d *sim.Device) error {
			v, err := via(r)
			if err == nil {
				u.UnplugVia(d, v)
			}
			return err
		})
	})
	mux.HandleFunc("/plug", func(w http.ResponseWriter, r *http.Request) {
		each(w, r, func(d *sim.Device) error {
			v, err := via(r)
			if err == nil {
				u.PlugVia(d, v)
			}
			return err
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr(), nil
}
