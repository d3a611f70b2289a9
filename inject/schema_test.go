package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/rsd"
	"github.com/iosmux/iosmux/xpc"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemas compiles the contract's JSON schemas from inject/schema.
func schemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"device", "devices", "error", "xpc-value"} {
		s, err := c.Compile("schema/" + name + ".schema.json")
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// validate checks body against a schema.
func validate(t *testing.T, s *jsonschema.Schema, what string, body []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s: not JSON: %v", what, err)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s does not match its schema: %v\nbody: %.2000s", what, err, body)
	}
}

// deviceDoc is the part of a device document the tests read.
type deviceDoc struct {
	UDID       string  `json:"udid"`
	Generation uint64  `json:"generation"`
	Ready      bool    `json:"ready"`
	State      string  `json:"state"`
	Name       *string `json:"name"`
	RSD        *struct {
		Host string `json:"host"`
		Port int    `json:"port"`
	} `json:"rsd"`
	Handshake *struct {
		UUID       string          `json:"uuid"`
		MPV        json.RawMessage `json:"messagingProtocolVersion"`
		Properties json.RawMessage `json:"properties"`
		Services   json.RawMessage `json:"services"`
	} `json:"handshake"`
}

// TestSchemasRejectBadDocuments shows each schema can fail: documents that break the contract
// in one place each are refused.
func TestSchemasRejectBadDocuments(t *testing.T) {
	s := schemas(t)
	hs := `{"uuid":"74957e41-fae9-4e1c-92cc-643171ecd41b","messagingProtocolVersion":{"type":"uint64","value":5},` +
		`"properties":{"type":"dictionary","value":{}},"services":{"type":"dictionary","value":{"a":{"type":"dictionary","value":{"Port":{"type":"string","value":"%s"}}}}}}`
	good := `{"contractVersion":1,"udid":"U","generation":2,"ready":true,"state":"published","name":null,"rsd":{"host":"127.0.0.1","port":5},"handshake":` +
		strings.Replace(hs, "%s", "49152", 1) + `}`
	validate(t, s["device"], "the good document", []byte(good))
	for name, doc := range map[string]string{
		"version 2":             strings.Replace(good, `"contractVersion":1`, `"contractVersion":2`, 1),
		"ready, no handshake":   `{"contractVersion":1,"udid":"U","generation":2,"ready":true,"state":"published","name":null,"rsd":{"host":"h","port":5}}`,
		"not ready, handshake":  strings.Replace(good, `"ready":true`, `"ready":false`, 1),
		"ready, generation 0":   strings.Replace(good, `"generation":2`, `"generation":0`, 1),
		"port as number":        strings.Replace(good, `{"type":"string","value":"49152"}`, `{"type":"uint64","value":49152}`, 1),
		"port not decimal":      strings.Replace(good, `"49152"`, `"0x10"`, 1),
		"untyped property":      strings.Replace(good, `"properties":{"type":"dictionary","value":{}}`, `"properties":{"type":"dictionary","value":{"A":1}}`, 1),
		"unknown field":         strings.Replace(good, `"state"`, `"extra":1,"state"`, 1),
		"missing name":          strings.Replace(good, `"name":null,`, ``, 1),
		"int64 out of range":    strings.Replace(good, `"properties":{"type":"dictionary","value":{}}`, `"properties":{"type":"dictionary","value":{"A":{"type":"int64","value":9223372036854775808}}}`, 1),
		"uuid upper case":       strings.Replace(good, `74957e41`, `74957E41`, 1),
		"data not base64":       strings.Replace(good, `"properties":{"type":"dictionary","value":{}}`, `"properties":{"type":"dictionary","value":{"A":{"type":"data","value":"!!"}}}`, 1),
		"rsd port out of range": strings.Replace(good, `"port":5`, `"port":70000`, 1),
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s["device"].Validate(inst) == nil {
			t.Errorf("%s: accepted by device.schema.json", name)
		}
	}
	list := `{"contractVersion":1,"devices":[` + good + `]}`
	inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(list))
	if s["devices"].Validate(inst) == nil {
		t.Error("a list entry with a handshake was accepted by devices.schema.json")
	}
}

// TestRoutesAgainstDaemon pins every inject route's JSON against its schema on a running
// `iosmuxd --simulate`, and checks each value against its source: the endpoint against
// GET /, the name and identity against the status route, and the handshake against what the
// advertised RSD endpoint itself serves. Then it rebuilds the tunnel under a long-poll.
func TestRoutesAgainstDaemon(t *testing.T) {
	s := schemas(t)
	d := startDaemon(t)
	dev := "/iosmux/inject/v1/devices/" + d.UDID

	var doc deviceDoc
	body := d.getJSON(t, dev+"?wait=30", 200, &doc)
	validate(t, s["device"], "device document", body)
	if !doc.Ready || doc.Handshake == nil || doc.RSD == nil {
		t.Fatalf("device not ready after ?wait=30: %s", body)
	}
	validate(t, s["devices"], "device list", d.get(t, "/iosmux/inject/v1/devices", 200))

	// The endpoint is GET /'s.
	var list map[string][]struct {
		Address string `json:"tunnel-address"`
		Port    int    `json:"tunnel-port"`
	}
	d.getJSON(t, "/", 200, &list)
	if e := list[d.UDID]; len(e) != 1 || e[0].Address != doc.RSD.Host || e[0].Port != doc.RSD.Port {
		t.Errorf("rsd %+v, GET / lists %+v", *doc.RSD, e)
	}
	// Name and identity are the status route's.
	var st struct {
		Devices []struct {
			UDID, State, ProductType, IOSVersion, DeviceName string
		} `json:"devices"`
	}
	d.getJSON(t, "/iosmux/status", 200, &st)
	if len(st.Devices) != 1 || st.Devices[0].UDID != doc.UDID {
		t.Fatalf("status lists %+v, inject has %s", st.Devices, doc.UDID)
	}
	sd := st.Devices[0]
	if doc.Name == nil || *doc.Name != sd.DeviceName || sd.DeviceName == "" {
		t.Errorf("name %v, status deviceName %q", doc.Name, sd.DeviceName)
	}
	if doc.State != sd.State {
		t.Errorf("state %q, status %q", doc.State, sd.State)
	}
	props, err := decodeXPC(doc.Handshake.Properties)
	if err != nil {
		t.Fatal(err)
	}
	pd := props.(*xpc.Dict)
	for key, want := range map[string]string{"UniqueDeviceID": doc.UDID, "ProductType": sd.ProductType, "OSVersion": sd.IOSVersion} {
		if got, _ := pd.String(key); got != want || want == "" {
			t.Errorf("Properties.%s = %q, status says %q", key, got, want)
		}
	}

	// The handshake is the one the advertised endpoint serves, value for value and type for type.
	h := readRSD(t, doc.RSD.Host, doc.RSD.Port)
	if h.UUID.String() != doc.Handshake.UUID {
		t.Errorf("uuid %s, endpoint serves %s", doc.Handshake.UUID, h.UUID)
	}
	if !reflect.DeepEqual(props, h.Properties) {
		t.Errorf("properties differ from the endpoint's")
	}
	services, err := decodeXPC(doc.Handshake.Services)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := h.Raw.Dict("Services")
	if !reflect.DeepEqual(services, want) {
		t.Errorf("services differ from the endpoint's")
	}
	mpv, err := decodeXPC(doc.Handshake.MPV)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := h.Raw.Get("MessagingProtocolVersion"); !reflect.DeepEqual(mpv, v) {
		t.Errorf("messagingProtocolVersion %v (%T), endpoint %v (%T)", mpv, mpv, v, v)
	}
	// Every advertised service port is listening on the endpoint's host.
	for _, e := range services.(*xpc.Dict).Entries {
		port, _ := e.Value.(*xpc.Dict).String("Port")
		c, err := net.DialTimeout("tcp", net.JoinHostPort(doc.RSD.Host, port), 5*time.Second)
		if err != nil {
			t.Errorf("service %s port %s: %v", e.Key, port, err)
			continue
		}
		c.Close()
	}

	// Bounds and errors.
	for _, q := range []string{"?wait=61", "?wait=-1", "?wait=x", "?wait=1e9", "?generation=-1", "?generation=x"} {
		validate(t, s["error"], "error for "+q, d.get(t, dev+q, 400))
	}
	validate(t, s["error"], "unknown device", d.get(t, "/iosmux/inject/v1/devices/nope?wait=1", 404))

	// Down: a short wait ends with the device not ready.
	d.get(t, "/cancel?udid="+d.UDID, 200)
	var down deviceDoc
	body = d.getJSON(t, dev+"?wait=0.2", 200, &down)
	validate(t, s["device"], "device document while cancelled", body)
	if down.Ready || down.Handshake != nil || down.Generation != doc.Generation {
		t.Errorf("cancelled device: %s", body)
	}
	validate(t, s["devices"], "device list while cancelled", d.get(t, "/iosmux/inject/v1/devices", 200))

	// A long-poll for a generation other than the old one ends when the tunnel is back.
	got := make(chan []byte, 1)
	go func() { got <- d.fetch(dev + "?wait=60&generation=" + strconv.FormatUint(doc.Generation, 10)) }()
	d.get(t, "/start-tunnel?udid="+d.UDID, 200)
	body = <-got
	validate(t, s["device"], "device document after rebuild", body)
	var next deviceDoc
	if err := json.Unmarshal(body, &next); err != nil {
		t.Fatalf("long-poll: %v: %s", err, body)
	}
	if !next.Ready || next.Generation == doc.Generation || next.Generation == 0 {
		t.Errorf("after the rebuild: ready %v generation %d (was %d)", next.Ready, next.Generation, doc.Generation)
	}
	// Same generation asked for again: it returns at once with the current one.
	var again deviceDoc
	d.getJSON(t, dev+"?wait=30", 200, &again)
	if again.Generation != next.Generation {
		t.Errorf("generation moved without a rebuild: %d then %d", next.Generation, again.Generation)
	}
}

// readRSD reads the handshake an RSD endpoint serves.
func readRSD(t *testing.T, host string, port int) *rsd.Handshake {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, h, err := rsd.Dial(ctx, net.JoinHostPort(host, strconv.Itoa(port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	return h
}
