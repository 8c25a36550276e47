package transport

import (
	"fmt"
	"net"
)

// SocketAdapter yields the packet socket a QUIC transport runs on. It is
// the seam for fault injection and relays (package transport/adapter) and
// for custom paths: the node's listening socket comes from Config.Adapter,
// and each Conn.Migrate call may use its own adapter for the new path.
type SocketAdapter interface {
	// Open returns a new packet conn; the caller owns and closes it.
	Open() (net.PacketConn, error)
}

// UDPAdapter opens a plain UDP socket. It returns a *net.UDPConn so quic-go
// keeps its fast paths (GSO, ECN, batched reads).
type UDPAdapter struct {
	// Addr is the local address, e.g. "127.0.0.1:0". Empty means
	// DefaultListenAddr.
	Addr string
}

var _ SocketAdapter = UDPAdapter{}

// Open binds a UDP socket on a.Addr.
func (a UDPAdapter) Open() (net.PacketConn, error) {
	addr := a.Addr
	if addr == "" {
		addr = DefaultListenAddr
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: resolve %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen on %s: %w", addr, err)
	}
	return conn, nil
}
