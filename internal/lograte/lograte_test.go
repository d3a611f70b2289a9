package lograte

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestFloodIsSummarised(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour, 5)
	for range 1000 {
		l.Log(slog.LevelWarn, "refused", "too many connections; refusing one", "endpoint", "rsd")
	}
	l.Log(slog.LevelWarn, "other", "something else")
	if n := strings.Count(buf.String(), "too many connections"); n != 5 {
		t.Fatalf("%d lines passed, want the burst of 5:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "something else") {
		t.Fatal("another kind of event was held back")
	}
	l.flush("refused") // the window's end
	if !strings.Contains(buf.String(), "suppressed=995") {
		t.Fatalf("no summary of the 995 suppressed lines:\n%s", buf.String())
	}
	// A new window passes lines again.
	l.Log(slog.LevelWarn, "refused", "too many connections; refusing one")
	if n := strings.Count(buf.String(), `msg="too many connections; refusing one"`); n != 6 {
		t.Fatalf("after the window, %d plain lines:\n%s", n, buf.String())
	}
}

func TestKeysAreBounded(t *testing.T) {
	l := New(nil, time.Hour, 1)
	for i := range 10 * maxKeys {
		l.Log(slog.LevelInfo, string(rune(i)), "x")
	}
	if len(l.keys) > maxKeys {
		t.Fatalf("%d keys tracked", len(l.keys))
	}
}
