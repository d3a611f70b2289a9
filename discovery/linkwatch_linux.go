package discovery

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WatchLinks signals on the returned channel when a network link appears, changes or goes
// (rtnetlink RTMGRP_LINK), coalescing bursts; it stops when ctx ends. It is how a phone's USB
// network interface is noticed at once rather than at the next rescan.
func WatchLinks(ctx context.Context) (<-chan struct{}, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	f := os.NewFile(uintptr(fd), "rtnetlink") // non-blocking: reads go through the poller, Close ends them
	ch := make(chan struct{}, 1)
	go func() {
		<-ctx.Done()
		f.Close()
	}()
	go func() {
		b := make([]byte, 64<<10) // the messages are not parsed: any link event means rescan
		for {
			if _, err := f.Read(b); err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, unix.ENOBUFS) { // overrun: events were lost, a rescan covers them
					continue
				}
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, nil
}
