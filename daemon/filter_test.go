package daemon

import (
	"context"
	"errors"
	"testing"
	"time"
)

// listSource reports a fixed list of events, then waits for ctx or returns err.
type listSource struct {
	evs []Event
	err error
}

func (s listSource) Name() string { return "list" }
func (s listSource) Run(ctx context.Context, out chan<- Event) error {
	for _, e := range s.evs {
		select {
		case out <- e:
		case <-ctx.Done():
			return nil
		}
	}
	if s.err != nil {
		return s.err
	}
	<-ctx.Done()
	return nil
}

// TestOnlyUDIDsPassesListedDevicesOnly sends three devices through the --udid filter: the
// listed one (given with its dash, reported without it) passes, the others do not.
func TestOnlyUDIDsPassesListedDevicesOnly(t *testing.T) {
	src := OnlyUDIDs{Source: listSource{evs: []Event{
		{Attached: true, Device: Device{UDID: "00008110000A1B2C3D4E5F01"}},
		{Attached: true, Device: Device{UDID: "00008110-000A1B2C3D4E5F99"}},
		{Attached: false, Device: Device{UDID: "00008110000A1B2C3D4E5F01"}},
		{Attached: true, Device: Device{UDID: "other"}},
	}}, UDIDs: []string{"00008110-000a1b2c3d4e5f01"}}
	if src.Name() != "list" {
		t.Fatalf("Name() = %q: the filter must keep the source's name (openers look it up)", src.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan Event, 8)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	var got []Event
	timeout := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case e := <-out:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("only %d events passed: %+v", len(got), got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(out)
	for e := range out {
		got = append(got, e)
	}
	if len(got) != 2 || !got[0].Attached || got[1].Attached || got[0].Device.UDID != "00008110000A1B2C3D4E5F01" {
		t.Fatalf("passed events %+v, want the listed device's attach and detach only", got)
	}
}

// TestOnlyUDIDsReturnsSourceError: a failing source's error comes back through the filter.
func TestOnlyUDIDsReturnsSourceError(t *testing.T) {
	boom := errors.New("usbmuxd Listen: boom")
	err := OnlyUDIDs{Source: listSource{err: boom}, UDIDs: []string{"x"}}.Run(context.Background(), make(chan Event))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
}
