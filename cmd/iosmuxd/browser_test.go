package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iosmux/iosmux/internal/peertest"
)

// TestBrowserPageCannotDriveTheAPI: a page served from another loopback origin, opened in a
// real headless Chromium, tries /shutdown, /clear_tunnels, /cancel and /start-tunnel by
// image, form and fetch; the daemon refuses each (and says so in its log), keeps running and
// keeps its tunnel.
func TestBrowserPageCannotDriveTheAPI(t *testing.T) {
	chromium := peertest.Tool(t, "chromium")
	e := startEnv(t, 1, false)
	d := e.devs[0]
	e.waitPublished(d.UDID)
	before := e.tunnels()[d.UDID][0]
	api := "http://" + e.api
	page := fmt.Sprintf(`<!doctype html><html><body>
<img src="%[1]s/shutdown"><img src="%[1]s/clear_tunnels"><img src="%[1]s/cancel?udid=%[2]s">
<iframe name="sink"></iframe>
<form id="f" method="GET" action="%[1]s/start-tunnel" target="sink"><input name="udid" value="%[2]s"></form>
<script>
fetch(%[1]q + "/shutdown", {mode: "no-cors"}).catch(() => {});
fetch(%[1]q + "/clear_tunnels", {mode: "no-cors", method: "POST"}).catch(() => {});
fetch(%[1]q + "/cancel?udid=%[2]s").catch(() => {});
document.getElementById("f").submit();
document.title = "attack sent";
</script></body></html>`, api, d.UDID)
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(page))
	}))
	defer attacker.Close()
	if strings.Contains(attacker.URL, e.api) {
		t.Fatal("attacker page shares the API's origin")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=5000", "--dump-dom", attacker.URL).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "attack sent") {
		t.Fatalf("chromium did not run the page: %v\n%s", err, out)
	}
	// The requests reached the daemon and were refused.
	waitFor(t, "the refused requests in the daemon's log", func() bool {
		return strings.Count(e.logs.String(), "api: refused request") >= 3
	})
	select {
	case err := <-e.done:
		t.Fatalf("the daemon stopped: %v", err)
	default:
	}
	after, ok := e.tunnels()[d.UDID]
	if !ok || after[0] != before {
		t.Fatalf("tunnel changed: %+v → %+v", before, after)
	}
	if st, _ := e.device(d.UDID); st.State != "published" || st.Attempts > 1 {
		t.Fatalf("device %+v after the page", st)
	}
}
