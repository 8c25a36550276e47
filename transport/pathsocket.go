package transport

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A pathSocket is the net.PacketConn under the quic.Transport of a path
// opened by Conn.Migrate. It exists so that a path the connection has left
// can give its OS socket back without ending the connection.
//
// quic-go v0.65 registers a connection with every quic.Transport it has
// sent a probe on and never unregisters it: closing that Transport, or
// letting its read loop see an error, destroys the connection. So the
// Transport must live as long as the connection. Its socket need not:
// retire closes the socket (the descriptor is released at once) and from
// then on the pathSocket plays a valid but silent socket to quic-go:
//
//   - reads block until the pathSocket is closed (when the connection
//     ends) or a read deadline passes, as on a socket nobody sends to;
//   - writes succeed and go nowhere, like packets lost on the wire (quic-go
//     ends the connection on a write error, so they must not fail).
//
// A retired path is one quic-go no longer uses: Conn.Migrate closes its
// quic.Path before retiring it, so quic-go neither probes it nor switches
// back to it. What quic-go may still write there is a PATH_RESPONSE or a
// retransmitted CONNECTION_CLOSE meant for that old 4-tuple; losing those
// is what would happen anyway if the old network were gone, and QUIC
// recovers (the response is re-sent on the active path, the close is
// repeated on every path).
//
// Close ends the pathSocket for good (closing the socket if it was not
// retired). Reads then fail with net.ErrClosed, which lets the Transport's
// read loop end; Conn does that only after the connection ended.
//
// newPathSocket returns a *udpPathSocket for a *net.UDPConn, which keeps
// quic-go's fast paths (batched reads, GSO, ECN) on the active path, and a
// plain *pathSocket for any other PacketConn (relays, fault injection).
type pathSocket struct {
	pc       net.PacketConn
	local    net.Addr
	received atomic.Int64 // UnixNano of the last successful read (or of creation)

	// mu: writes hold it shared while they use pc, so retire (exclusive)
	// never closes the socket under a write. Reads do not hold it: a read
	// blocked in pc fails when retire closes pc, then finds retired set.
	mu       sync.RWMutex
	retired  bool
	closed   bool
	deadline time.Time     // read deadline, kept for reads after retire
	wake     chan struct{} // closed (and replaced) when the deadline changes
	done     chan struct{} // closed by Close
}

func newPathSocket(pc net.PacketConn) net.PacketConn {
	s := &pathSocket{pc: pc, local: pc.LocalAddr(), wake: make(chan struct{}), done: make(chan struct{})}
	s.noteReceived()
	if u, ok := pc.(*net.UDPConn); ok {
		return &udpPathSocket{pathSocket: s, udp: u}
	}
	return s
}

// socketOf returns the pathSocket inside a PacketConn made by newPathSocket.
func socketOf(pc net.PacketConn) *pathSocket {
	switch s := pc.(type) {
	case *pathSocket:
		return s
	case *udpPathSocket:
		return s.pathSocket
	}
	return nil
}

// noteReceived records that a read returned data.
func (s *pathSocket) noteReceived() { s.received.Store(time.Now().UnixNano()) }

// lastReceived is when a read last returned data (creation time if none did).
func (s *pathSocket) lastReceived() time.Time { return time.Unix(0, s.received.Load()) }

// retire releases the OS socket and turns the pathSocket silent. It
// waits for writes in progress. Safe to call more than once, and after
// Close.
func (s *pathSocket) retire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retired || s.closed {
		return
	}
	s.retired = true
	_ = s.pc.Close()
}

// isRetired reports whether retire ran.
func (s *pathSocket) isRetired() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.retired
}

// Close ends the pathSocket: blocked and later reads fail with
// net.ErrClosed. Safe to call more than once.
func (s *pathSocket) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	if s.retired {
		return nil
	}
	return s.pc.Close()
}

// readFailed decides what a read that failed with err returns: err itself
// while the socket is live (or closed), and after retire the outcome of
// waiting as a socket that never receives anything.
func (s *pathSocket) readFailed(err error) error {
	if !s.isRetired() {
		return err
	}
	return s.waitRetired()
}

// waitRetired blocks a read on a retired socket until Close or the read
// deadline.
func (s *pathSocket) waitRetired() error {
	for {
		s.mu.RLock()
		closed, deadline, wake := s.closed, s.deadline, s.wake
		s.mu.RUnlock()
		if closed {
			return s.opError("read", net.ErrClosed)
		}
		if deadline.IsZero() {
			select {
			case <-s.done:
			case <-wake:
			}
			continue
		}
		d := time.Until(deadline)
		if d <= 0 {
			return s.opError("read", os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(d)
		select {
		case <-s.done:
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *pathSocket) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: s.local.Network(), Source: s.local, Err: err}
}

// ReadFrom reads from the socket; on a retired socket it blocks (see
// pathSocket).
func (s *pathSocket) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := s.pc.ReadFrom(b)
	if err != nil {
		return n, addr, s.readFailed(err)
	}
	s.noteReceived()
	return n, addr, nil
}

// WriteTo writes to the socket; on a retired socket it reports success and
// sends nothing.
func (s *pathSocket) WriteTo(b []byte, addr net.Addr) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, s.opError("write", net.ErrClosed)
	case s.retired:
		return len(b), nil
	}
	return s.pc.WriteTo(b, addr)
}

// LocalAddr is the socket's address, also after retire.
func (s *pathSocket) LocalAddr() net.Addr { return s.local }

// SetDeadline sets the read and write deadlines.
func (s *pathSocket) SetDeadline(t time.Time) error {
	if err := s.SetReadDeadline(t); err != nil {
		return err
	}
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline, which also ends reads waiting on
// a retired socket (quic.Transport.Close relies on it).
func (s *pathSocket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	close(s.wake)
	s.wake = make(chan struct{})
	if s.retired || s.closed {
		return nil
	}
	return s.pc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline of a live socket.
func (s *pathSocket) SetWriteDeadline(t time.Time) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.retired || s.closed {
		return nil
	}
	return s.pc.SetWriteDeadline(t)
}

// udpPathSocket is a pathSocket over a *net.UDPConn. It has the methods
// quic-go looks for to use a UDP socket's fast paths (quic-go's
// OOBCapablePacketConn, and net.Conn, which x/net's batch reader wants):
// while live they pass through; once retired, reads block and writes are
// dropped like pathSocket's.
type udpPathSocket struct {
	*pathSocket
	udp *net.UDPConn
}

// SyscallConn returns the socket's raw connection, wrapped so that a
// batched read blocked on it when the socket is retired keeps blocking.
func (s *udpPathSocket) SyscallConn() (syscall.RawConn, error) {
	raw, err := s.udp.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &pathRawConn{raw: raw, s: s.pathSocket}, nil
}

// SetReadBuffer sets the socket's receive buffer size.
func (s *udpPathSocket) SetReadBuffer(n int) error { return s.udp.SetReadBuffer(n) }

// SetWriteBuffer sets the socket's send buffer size.
func (s *udpPathSocket) SetWriteBuffer(n int) error { return s.udp.SetWriteBuffer(n) }

// ReadMsgUDP reads a datagram with its control data.
func (s *udpPathSocket) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, addr, err = s.udp.ReadMsgUDP(b, oob)
	if err != nil {
		return n, oobn, flags, addr, s.readFailed(err)
	}
	s.noteReceived()
	return n, oobn, flags, addr, nil
}

// WriteMsgUDP writes a datagram with control data (GSO, ECN); dropped
// once retired.
func (s *udpPathSocket) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, 0, s.opError("write", net.ErrClosed)
	case s.retired:
		return len(b), len(oob), nil
	}
	return s.udp.WriteMsgUDP(b, oob, addr)
}

// Read reads from a connected socket (net.Conn; quic-go does not call it).
func (s *udpPathSocket) Read(b []byte) (int, error) {
	n, err := s.udp.Read(b)
	if err != nil {
		return n, s.readFailed(err)
	}
	s.noteReceived()
	return n, nil
}

// Write writes to a connected socket (net.Conn; quic-go does not call it).
func (s *udpPathSocket) Write(b []byte) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, s.opError("write", net.ErrClosed)
	case s.retired:
		return len(b), nil
	}
	return s.udp.Write(b)
}

// RemoteAddr is nil: path sockets are not connected.
func (s *udpPathSocket) RemoteAddr() net.Addr { return s.udp.RemoteAddr() }

// pathRawConn wraps the raw connection of a udpPathSocket's socket: a
// read through it (x/net's recvmmsg, which quic-go uses for batched
// reads) that fails because the socket was retired blocks like
// pathSocket's reads instead.
type pathRawConn struct {
	raw syscall.RawConn
	s   *pathSocket
}

func (r *pathRawConn) Control(f func(fd uintptr)) error { return r.raw.Control(f) }

func (r *pathRawConn) Read(f func(fd uintptr) bool) error {
	if err := r.raw.Read(f); err != nil {
		return r.s.readFailed(err)
	}
	r.s.noteReceived()
	return nil
}

func (r *pathRawConn) Write(f func(fd uintptr) bool) error { return r.raw.Write(f) }

var (
	_ net.PacketConn = (*pathSocket)(nil)
	_ net.PacketConn = (*udpPathSocket)(nil)
	_ net.Conn       = (*udpPathSocket)(nil)
)
