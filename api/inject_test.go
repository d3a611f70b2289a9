package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// injectFake is a daemon that serves the inject routes and records what they asked.
type injectFake struct {
	*fakeDaemon
	deadline time.Time
	hasDL    bool
	notGen   uint64
}

func (f *injectFake) InjectDevices() []InjectDevice {
	return []InjectDevice{{UDID: "U", Generation: 3, State: "published"}}
}

func (f *injectFake) InjectDevice(ctx context.Context, udid string, notGen uint64) (InjectDevice, error) {
	if udid != "U" {
		return InjectDevice{}, ErrNoDevice
	}
	f.deadline, f.hasDL = ctx.Deadline()
	f.notGen = notGen
	return InjectDevice{UDID: "U", Generation: 3, State: "opening", Name: "Phone"}, nil
}

// TestInjectWaitIsBounded: every device request carries a deadline no later than
// InjectMaxWait, a longer wait is refused, and ?generation reaches the daemon.
func TestInjectWaitIsBounded(t *testing.T) {
	f := &injectFake{fakeDaemon: newFake()}
	h := New(f, nil)
	for _, q := range []string{"", "?wait=0", "?wait=60", "?wait=2.5&generation=7"} {
		before := time.Now()
		code, _, body := do(t, h, "GET", InjectDevicePath+"U"+q, nil)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		if !f.hasDL || f.deadline.After(before.Add(InjectMaxWait).Add(time.Second)) {
			t.Errorf("%s: deadline %v (set %v), more than %v away", q, f.deadline, f.hasDL, InjectMaxWait)
		}
		want := `{"contractVersion":1,"udid":"U","generation":3,"ready":false,"state":"opening","name":"Phone","rsd":null}` + "\n"
		if body != want {
			t.Errorf("%s: body %s", q, body)
		}
	}
	if f.notGen != 7 {
		t.Errorf("generation reached the daemon as %d", f.notGen)
	}
	for _, q := range []string{"?wait=60.5", "?wait=-0.1", "?wait=NaN", "?wait=Inf", "?generation=1.5"} {
		if code, _, body := do(t, h, "GET", InjectDevicePath+"U"+q, nil); code != http.StatusBadRequest || !strings.Contains(body, `"detail"`) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
	if code, _, body := do(t, h, "GET", InjectDevicePath+"V", nil); code != http.StatusNotFound {
		t.Errorf("unknown device: %d %s", code, body)
	}
	code, _, body := do(t, h, "GET", InjectDevicesPath, nil)
	if want := `{"contractVersion":1,"devices":[{"contractVersion":1,"udid":"U","generation":3,"ready":false,"state":"published","name":null,"rsd":null}]}` + "\n"; code != 200 || body != want {
		t.Errorf("list: %d %s", code, body)
	}
	// A request from a web page is refused as on every other route.
	if code, _, _ := do(t, h, "GET", InjectDevicesPath, map[string]string{"Host": "evil.example"}); code != http.StatusForbidden {
		t.Errorf("non-loopback Host: %d", code)
	}
}

// TestInjectRoutesNeedASource: a daemon without InjectSource has no inject routes.
func TestInjectRoutesNeedASource(t *testing.T) {
	h := New(newFake(), nil)
	if code, _, _ := do(t, h, "GET", InjectDevicesPath, nil); code != http.StatusNotFound {
		t.Errorf("inject list without a source: %d", code)
	}
}
