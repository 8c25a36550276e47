package adapter

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// Relayed opens sockets whose packets travel through a UDP relay (a
// Relay, or any forwarder that gives each client its own upstream
// address): every packet is sent to Via whatever its destination, and
// packets from Via are reported as coming from the destination last
// written to. The QUIC connection on top therefore keeps addressing the
// peer while the bytes go through the relay.
//
// Use it to dial through a relay (Transport.DialVia with the peer's
// address) and to migrate a connection onto a relay, or from one relay to
// another (Conn.Migrate). One socket serves one peer.
type Relayed struct {
	// Via is the relay's address. Required.
	Via net.Addr
	// Local is the local address to bind. Empty means 127.0.0.1:0 when
	// Via is a loopback address, otherwise the unspecified address of
	// Via's family with a fresh port.
	Local string
}

// Open binds a UDP socket and wraps it so it talks through the relay.
func (a Relayed) Open() (net.PacketConn, error) {
	if a.Via == nil {
		return nil, errors.New("adapter: Relayed needs the relay's address (Via)")
	}
	via, err := net.ResolveUDPAddr("udp", a.Via.String())
	if err != nil {
		return nil, fmt.Errorf("adapter: relay address %s: %w", a.Via, err)
	}
	local := a.Local
	if local == "" {
		switch {
		case via.IP.IsLoopback() && via.IP.To4() != nil:
			local = "127.0.0.1:0"
		case via.IP.To4() != nil:
			local = "0.0.0.0:0"
		default:
			local = "[::]:0"
		}
	}
	conn, err := listenUDP(local)
	if err != nil {
		return nil, err
	}
	return &relayConn{inner: conn, via: via}, nil
}

// relayConn sends everything to the relay and attributes the relay's
// packets to the peer. It deliberately has no ReadMsgUDP/SyscallConn:
// quic-go must go through ReadFrom and WriteTo.
type relayConn struct {
	inner *net.UDPConn
	via   *net.UDPAddr
	peer  atomic.Pointer[peerAddr] // last destination written to
}

// peerAddr boxes a net.Addr for atomic.Pointer.
type peerAddr struct{ addr net.Addr }

var _ net.PacketConn = (*relayConn)(nil)

// ReadFrom returns the next packet from the relay; packets from anyone
// else are dropped.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.inner.ReadFromUDP(p)
		if err != nil {
			return n, from, err
		}
		if from.Port != c.via.Port || !from.IP.Equal(c.via.IP) {
			continue
		}
		if peer := c.peer.Load(); peer != nil {
			return n, peer.addr, nil
		}
		return n, from, nil
	}
}

// WriteTo sends p to the relay, remembering addr as the peer.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if cur := c.peer.Load(); cur == nil || cur.addr != addr {
		c.peer.Store(&peerAddr{addr})
	}
	return c.inner.WriteToUDP(p, c.via)
}

// Close closes the socket.
func (c *relayConn) Close() error { return c.inner.Close() }

// LocalAddr is the socket's local address.
func (c *relayConn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// SetDeadline sets both deadlines.
func (c *relayConn) SetDeadline(t time.Time) error { return c.inner.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *relayConn) SetReadDeadline(t time.Time) error { return c.inner.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *relayConn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }

// SetReadBuffer sets the receive buffer (quic-go asks for a large one).
func (c *relayConn) SetReadBuffer(bytes int) error { return c.inner.SetReadBuffer(bytes) }

// SetWriteBuffer sets the send buffer.
func (c *relayConn) SetWriteBuffer(bytes int) error { return c.inner.SetWriteBuffer(bytes) }
