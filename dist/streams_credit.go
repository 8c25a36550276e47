// Credit-based flow control of user streams.
//
// quic-go returns connection-level flow-control credit only when the
// application reads a stream, so a user stream nobody reads would hold
// its share of the connection's receive window, and a few of them would
// stall the actor data and control streams of the same connection. User
// streams therefore carry flow control of their own on top of QUIC:
//
//   - Receiver: a goroutine per stream (receive) reads the QUIC stream
//     eagerly into a ring of the receiver's window (Config.UserStreamWindow)
//     and Stream.Read takes from the ring. QUIC's credit is returned at
//     once; unread bytes sit in the ring, never in QUIC's buffers.
//   - Sender: Stream.Write sends at most the credit it holds, and waits
//     while it holds none. Credit starts at the peer's window, announced
//     in StreamHeader (opener's) and StreamAccept (acceptor's).
//   - Grants: the receiver returns credit for what the application
//     consumed, in batches of at least a quarter window, with a
//     Control.StreamCredit frame on the control stream, which readControl
//     always reads eagerly.
//   - A peer that writes past its credit breaks the protocol: the stream
//     (not the connection) is reset with StreamCodeProtocolViolation.
//
// Ownership: a stream's receive state (ring, error, read deadline,
// consumed bytes not yet granted) is under rmu, shared by the receive
// goroutine, which alone writes into the ring's free part, and Read,
// which alone takes from its filled part. The send state (credit, write
// deadline) is under smu, shared by Write and the control reader that
// applies grants. The session's userStreams map (under the session's mu)
// routes grants by QUIC stream ID to streams whose write side is open.

package dist

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// StreamCodeProtocolViolation resets a user stream whose peer wrote past
// the credit it was granted.
const StreamCodeProtocolViolation transport.ErrorCode = 0x103

// recvAccount is the receive side's credit accounting: bytes buffered and
// bytes consumed but not yet granted back. Buffered bytes never exceed the
// window while the peer keeps to its credit.
type recvAccount struct {
	window    int
	buffered  int
	ungranted int
}

// received counts n bytes that arrived; false means the peer overran its
// credit.
func (a *recvAccount) received(n int) bool {
	if n > a.window-a.buffered {
		return false
	}
	a.buffered += n
	return true
}

// consumed counts n bytes the application read and returns the credit to
// grant now: zero until at least a quarter window is owed, so a grant
// frame carries at least window/4 bytes.
func (a *recvAccount) consumed(n int) (grant int) {
	a.buffered -= n
	a.ungranted += n
	if a.ungranted < max(1, a.window/4) {
		return 0
	}
	grant, a.ungranted = a.ungranted, 0
	return grant
}

// sendAccount is the send side's credit: bytes this node may still write
// before the peer grants more. It never exceeds the peer's window.
type sendAccount struct {
	window int // the peer's receive window
	credit int
}

// take reserves up to want bytes of credit and returns how many.
func (a *sendAccount) take(want int) int {
	n := min(a.credit, want)
	a.credit -= n
	return n
}

// grant adds credit the peer returned (or bytes reserved and not sent).
func (a *sendAccount) grant(n int) {
	a.credit = min(a.window, a.credit+n)
}

// startReceiving registers st with the session for grants and starts its
// receive goroutine; once the session has stopped its goroutines, st is
// dead from the start.
func (s *session) startReceiving(st *Stream) {
	s.mu.Lock()
	if s.streamsStopped {
		s.mu.Unlock()
		st.recvFail(fmt.Errorf("%w: stream %q to %s: session ended", ErrConnectionLost, st.tag, s.peer))
		return
	}
	if s.userStreams == nil {
		s.userStreams = make(map[int64]*Stream)
	}
	id := st.st.StreamID()
	s.userStreams[id] = st
	s.wg.Add(1)
	s.mu.Unlock()
	// Grants matter only while the write side is open.
	context.AfterFunc(st.st.WriteContext(), func() {
		s.mu.Lock()
		if s.userStreams[id] == st {
			delete(s.userStreams, id)
		}
		s.mu.Unlock()
	})
	go st.receive()
}

// stopStreams makes later user streams dead on arrival; the supervisor
// calls it before it waits for the session's goroutines.
func (s *session) stopStreams() {
	s.mu.Lock()
	s.streamsStopped = true
	s.mu.Unlock()
}

// creditGranted applies a StreamCredit frame from the peer. Grants for a
// stream whose write side has finished are moot and dropped.
func (s *session) creditGranted(c *caskpb.StreamCredit) {
	s.mu.Lock()
	st := s.userStreams[int64(c.GetStreamId())]
	s.mu.Unlock()
	if st == nil {
		return
	}
	st.smu.Lock()
	st.send.grant(int(c.GetBytes()))
	st.smu.Unlock()
	wake(st.writable)
}

// grantCredit tells the peer it may write n more bytes on st.
func (s *session) grantCredit(st *Stream, n int) {
	_ = s.sendControl(&caskpb.Control{Body: &caskpb.Control_StreamCredit{StreamCredit: &caskpb.StreamCredit{
		StreamId: uint64(st.st.StreamID()), Bytes: uint32(n),
	}}})
}

// wake does a non-blocking send on a 1-buffered channel.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// receive reads the QUIC stream into the ring until the stream ends, is
// reset or the connection goes; it never waits for Read, so the peer's
// bytes leave QUIC's buffers as soon as they arrive.
func (st *Stream) receive() {
	defer st.sess.wg.Done()
	var scratch [2 << 10]byte // until the first bytes: the ring is allocated then
	for {
		st.rmu.Lock()
		if st.rerr != nil {
			st.rmu.Unlock()
			return
		}
		dst := st.freeSpanLocked()
		st.rmu.Unlock()
		into := dst
		if into == nil {
			into = scratch[:]
		}
		n, err := st.br.Read(into)
		if n > 0 && !st.stash(into[:n], dst == nil) {
			st.overrun()
			return
		}
		if err != nil {
			st.recvFail(err)
			return
		}
	}
}

// freeSpanLocked is the ring's first contiguous free part, or nil when the
// ring is not allocated yet or full.
func (st *Stream) freeSpanLocked() []byte {
	if st.ring == nil {
		return nil
	}
	if st.recv.buffered == 0 {
		st.head = 0 // nobody reads while it is empty: start over, for a longer span
	}
	tail := (st.head + st.recv.buffered) % len(st.ring)
	switch {
	case st.recv.buffered == len(st.ring):
		return nil
	case tail < st.head:
		return st.ring[tail:st.head]
	default:
		return st.ring[tail:]
	}
}

// stash accounts for p, just read; copyIn means p is not in the ring yet
// (it went to the scratch buffer because the ring was not allocated or was
// full when the read began; Read may have made room since). False means
// an overrun.
func (st *Stream) stash(p []byte, copyIn bool) bool {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	if st.rerr != nil {
		return true // closed meanwhile; the bytes are moot
	}
	if copyIn && st.ring == nil {
		st.ring = make([]byte, st.recv.window)
	}
	tail := (st.head + st.recv.buffered) % len(st.ring)
	if !st.recv.received(len(p)) {
		return false
	}
	if copyIn {
		k := copy(st.ring[tail:], p)
		copy(st.ring, p[k:])
	}
	wake(st.readable)
	return true
}

// recvFail ends the receive side with err (io.EOF, a reset, the
// connection's end) after the bytes buffered, unless it already ended.
func (st *Stream) recvFail(err error) {
	st.rmu.Lock()
	if st.rerr == nil {
		st.rerr = err
	}
	st.rmu.Unlock()
	wake(st.readable)
}

// overrun resets a stream whose peer wrote past its credit, and logs it.
func (st *Stream) overrun() {
	st.sess.log().Warn("resetting user stream: the peer wrote past its credit",
		"tag", st.tag, "stream", st.st.StreamID(), "window", st.recv.window)
	st.st.CancelRead(StreamCodeProtocolViolation)
	st.st.CancelWrite(StreamCodeProtocolViolation)
	st.rmu.Lock()
	st.rerr = &transport.StreamError{Code: StreamCodeProtocolViolation}
	st.recv.buffered = 0
	st.rmu.Unlock()
	wake(st.readable)
	if st.inbound {
		st.freeSlot()
	}
}

// read takes up to len(p) buffered bytes, waiting for some, for the end
// of the stream or for the read deadline.
func (st *Stream) read(p []byte) (int, error) {
	for {
		st.rmu.Lock()
		if st.recv.buffered > 0 && len(p) > 0 {
			n, grant := 0, 0
			for n < len(p) && st.recv.buffered > 0 {
				k := copy(p[n:], st.ring[st.head:min(len(st.ring), st.head+st.recv.buffered)])
				st.head = (st.head + k) % len(st.ring)
				n += k
				grant += st.recv.consumed(k)
			}
			st.rmu.Unlock()
			if grant > 0 {
				st.sess.grantCredit(st, grant)
			}
			return n, nil
		}
		if err := st.rerr; err != nil {
			st.rmu.Unlock()
			return 0, err
		}
		if len(p) == 0 {
			st.rmu.Unlock()
			return 0, nil
		}
		deadline := st.readDeadline
		st.rmu.Unlock()
		if err := waitFor(st.readable, deadline, nil, nil); err != nil {
			return 0, err
		}
	}
}

// write sends p within the credit the peer granted, waiting for grants.
func (st *Stream) write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		st.smu.Lock()
		n := st.send.take(len(p))
		deadline := st.writeDeadline
		st.smu.Unlock()
		if n == 0 {
			if err := waitFor(st.writable, deadline, st.st.WriteContext().Done(), st.sess.ctx.Done()); err != nil {
				if err == errWriteSideDone {
					_, err = st.st.Write(nil) // the reason: closed, reset, connection gone
					if err == nil {
						err = transport.ErrClosed
					}
				}
				return total, err
			}
			continue
		}
		m, err := st.st.Write(p[:n])
		total += m
		p = p[m:]
		if m < n {
			st.smu.Lock()
			st.send.grant(n - m)
			st.smu.Unlock()
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// errWriteSideDone: the stream's write side or its session ended while a
// Write waited for credit.
var errWriteSideDone = fmt.Errorf("dist: user stream write side done")

// waitFor waits for a signal on c, the deadline (os.ErrDeadlineExceeded)
// or either done channel (errWriteSideDone).
func waitFor(c chan struct{}, deadline time.Time, done1, done2 <-chan struct{}) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-c:
		return nil
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-done1:
		return errWriteSideDone
	case <-done2:
		return errWriteSideDone
	}
}

var _ io.ReadWriteCloser = (*Stream)(nil)
