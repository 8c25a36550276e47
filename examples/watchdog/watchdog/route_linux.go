//go:build linux

package watchdog

import (
	"context"
	"fmt"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RouteWatcher reports changes of the default route (IPv4 or IPv6) in
// the network namespace it was opened in, from a netlink route socket.
type RouteWatcher struct {
	fd int
}

// OpenRouteWatcher opens a netlink socket subscribed to route changes.
// It must be closed.
func OpenRouteWatcher() (*RouteWatcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("watchdog: netlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watchdog: netlink bind: %w", err)
	}
	// A receive timeout lets Run notice its context ending.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watchdog: netlink timeout: %w", err)
	}
	return &RouteWatcher{fd: fd}, nil
}

// Close releases the socket.
func (w *RouteWatcher) Close() error { return unix.Close(w.fd) }

// Run calls onChange (on Run's goroutine) for every default-route
// addition, removal or replacement until ctx ends; then it returns nil.
func (w *RouteWatcher) Run(ctx context.Context, onChange func()) error {
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(w.fd, buf, 0)
		if err == unix.EAGAIN || err == unix.EWOULDBLOCK || err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("watchdog: netlink receive: %w", err)
		}
		if defaultRouteChanged(buf[:n]) {
			onChange()
		}
	}
	return nil
}

// defaultRouteChanged reports whether a netlink batch holds a new or
// deleted route with a zero-length destination in the main table.
func defaultRouteChanged(b []byte) bool {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWROUTE && m.Header.Type != unix.RTM_DELROUTE {
			continue
		}
		if len(m.Data) < unix.SizeofRtMsg {
			continue
		}
		rt := (*unix.RtMsg)(unsafe.Pointer(&m.Data[0]))
		if rt.Dst_len == 0 && rt.Table == unix.RT_TABLE_MAIN {
			return true
		}
	}
	return false
}
