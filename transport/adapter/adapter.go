package adapter

import (
	"fmt"
	"net"
)

// DefaultListenAddr is the local address Faulty (with no inner adapter)
// and Relay bind when none is given.
const DefaultListenAddr = "127.0.0.1:0"

// Opener opens packet sockets; transport.SocketAdapter and every adapter
// in this package satisfy it.
type Opener interface {
	// Open returns a new packet conn; the caller owns and closes it.
	Open() (net.PacketConn, error)
}

// listenUDP binds a UDP socket on addr (empty means DefaultListenAddr).
func listenUDP(addr string) (*net.UDPConn, error) {
	if addr == "" {
		addr = DefaultListenAddr
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("adapter: resolve %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return nil, fmt.Errorf("adapter: listen on %s: %w", addr, err)
	}
	return conn, nil
}

// udpOpener opens a plain UDP socket on addr.
type udpOpener struct{ addr string }

func (u udpOpener) Open() (net.PacketConn, error) { return listenUDP(u.addr) }
