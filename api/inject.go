package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
)

// The inject routes: what code loaded into CoreDeviceService reads (inject/CONTRACT.md).
const (
	// InjectContractVersion is the contract version these routes serve; it is part of the paths.
	InjectContractVersion = 1
	// InjectDevicesPath lists every device; InjectDevicePath + UDID is one device's document.
	InjectDevicesPath = "/iosmux/inject/v1/devices"
	InjectDevicePath  = InjectDevicesPath + "/"
	// InjectMaxWait bounds ?wait=SECONDS: a longer wait is refused with 400.
	InjectMaxWait = 60 * time.Second
)

// InjectEndpoint is an address clients connect to.
type InjectEndpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

// InjectDevice is one device as the inject routes show it. Handshake and Services are set only
// when Ready; the list route leaves them out.
type InjectDevice struct {
	UDID       string
	Generation uint64 // changes on every tunnel rebuild; 0 before the first
	Ready      bool   // published, with the device's handshake read
	State      string
	Name       string          // lockdown's DeviceName; "" when not known
	RSD        *InjectEndpoint // the RSD endpoint to present (a shim's, or the tunnel's)
	Handshake  *rsd.Handshake  // the device's handshake, as received
	Services   *xpc.Dict       // the handshake's Services as the RSD endpoint serves them
}

// InjectSource is what the inject routes need from the daemon; New serves them when its
// Daemon implements it.
type InjectSource interface {
	// InjectDevices lists every device (no handshakes).
	InjectDevices() []InjectDevice
	// InjectDevice returns udid's document, waiting until ctx ends for it to be ready with a
	// generation other than notGen (0: any); ErrNoDevice when no source knows udid.
	InjectDevice(ctx context.Context, udid string, notGen uint64) (InjectDevice, error)
}

// addInjectRoutes registers the inject routes on r when d serves them.
func (s *server) addInjectRoutes(r *mux.Router) {
	src, ok := s.d.(InjectSource)
	if !ok {
		return
	}
	r.HandleFunc(InjectDevicesPath, func(w http.ResponseWriter, _ *http.Request) {
		devs := src.InjectDevices()
		list := make([]injectDoc, 0, len(devs))
		for _, d := range devs {
			list = append(list, newInjectDoc(d))
		}
		writeInject(w, http.StatusOK, injectList{Version: InjectContractVersion, Devices: list})
	}).Methods(http.MethodGet)
	r.HandleFunc(InjectDevicePath+"{udid}", func(w http.ResponseWriter, r *http.Request) {
		wait, notGen, msg := injectQuery(r)
		if msg != "" {
			writeInject(w, http.StatusBadRequest, injectError{Detail: msg})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		d, err := src.InjectDevice(ctx, mux.Vars(r)["udid"], notGen)
		if errors.Is(err, ErrNoDevice) {
			writeInject(w, http.StatusNotFound, injectError{Detail: "no such device"})
			return
		} else if err != nil {
			writeInject(w, http.StatusInternalServerError, injectError{Detail: "Internal Server Error"})
			return
		}
		writeInject(w, http.StatusOK, newInjectDoc(d))
	}).Methods(http.MethodGet)
}

// injectQuery reads ?wait=SECONDS (0 to InjectMaxWait, default 0) and ?generation=N (the
// generation the caller already has: wait for another one). msg says what is wrong.
func injectQuery(r *http.Request) (wait time.Duration, notGen uint64, msg string) {
	q := r.URL.Query()
	if v := q.Get("wait"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || !(secs >= 0 && secs <= InjectMaxWait.Seconds()) { // NaN fails both
			return 0, 0, "wait must be a number of seconds from 0 to " + strconv.Itoa(int(InjectMaxWait.Seconds()))
		}
		wait = time.Duration(secs * float64(time.Second))
	}
	if v := q.Get("generation"); v != "" {
		g, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, "generation must be a non-negative integer"
		}
		notGen = g
	}
	return wait, notGen, ""
}

// injectList is the list route's body.
type injectList struct {
	Version int         `json:"contractVersion"`
	Devices []injectDoc `json:"devices"`
}

// injectDoc is one device's JSON document (inject/schema/device.schema.json).
type injectDoc struct {
	Version    int             `json:"contractVersion"`
	UDID       string          `json:"udid"`
	Generation uint64          `json:"generation"`
	Ready      bool            `json:"ready"`
	State      string          `json:"state"`
	Name       *string         `json:"name"`
	RSD        *InjectEndpoint `json:"rsd"`
	Handshake  *injectHS       `json:"handshake,omitempty"`
}

// injectHS is the device's handshake: values as received, typed (xpcjson.go), except the
// services' Port values, which are the RSD endpoint's.
type injectHS struct {
	UUID                     string          `json:"uuid"`
	MessagingProtocolVersion json.RawMessage `json:"messagingProtocolVersion"`
	Properties               json.RawMessage `json:"properties"`
	Services                 json.RawMessage `json:"services"`
}

type injectError struct {
	Detail string `json:"detail"`
}

func newInjectDoc(d InjectDevice) injectDoc {
	doc := injectDoc{Version: InjectContractVersion, UDID: d.UDID, Generation: d.Generation, Ready: d.Ready,
		State: d.State, RSD: d.RSD}
	if d.Name != "" {
		doc.Name = &d.Name
	}
	if h := d.Handshake; h != nil && d.Services != nil {
		mpv, _ := h.Raw.Get("MessagingProtocolVersion")
		doc.Handshake = &injectHS{UUID: h.UUID.String(), MessagingProtocolVersion: xpcJSON(mpv),
			Properties: xpcJSON(h.Properties), Services: xpcJSON(d.Services)}
	}
	return doc
}

func writeInject(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, []byte(`{"detail":"Internal Server Error"}`))
		return
	}
	writeJSON(w, code, append(body, '\n'))
}
