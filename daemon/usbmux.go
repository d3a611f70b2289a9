package daemon

import (
	"context"
	"fmt"

	"github.com/iosmux/iosmux/lockdown"
)

// UsbmuxSource reports the devices of one usbmuxd (a local socket or TCP to another host).
type UsbmuxSource struct {
	Mux *lockdown.Mux
}

// Name is the usbmuxd's address.
func (s UsbmuxSource) Name() string { return "usbmuxd " + s.Mux.String() }

// Run subscribes to usbmuxd events until ctx ends or usbmuxd goes away.
func (s UsbmuxSource) Run(ctx context.Context, out chan<- Event) error {
	l, err := s.Mux.Listen(ctx)
	if err != nil {
		return err // it names usbmuxd, Listen and the address
	}
	defer l.Close()
	ids := map[uint32]Device{} // DeviceID -> path, for Detached events that carry only the id
	for ev := range l.Events() {
		switch ev.Type {
		case lockdown.MsgAttached:
			d := Device{UDID: ev.Device.UDID, DeviceID: int(ev.Device.ID), ConnectionType: ev.Device.ConnectionType,
				Source: s.Name(), ProductID: int(ev.Device.Properties.ProductID)}
			ids[ev.Device.ID] = d
			select {
			case out <- Event{Attached: true, Device: d}:
			case <-ctx.Done():
				return nil
			}
		case lockdown.MsgDetached:
			d, ok := ids[ev.Device.ID]
			if !ok {
				continue
			}
			delete(ids, ev.Device.ID)
			select {
			case out <- Event{Attached: false, Device: d}:
			case <-ctx.Done():
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := l.Err(); err != nil {
		return err
	}
	return fmt.Errorf("usbmuxd Listen: connection closed")
}
