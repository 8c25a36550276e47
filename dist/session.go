// The session's lifecycle.
//
// A session value is one connection's part of the dist state shared with
// a peer, past both handshakes: the control stream, the data stream
// writers (outbound.go) and readers (inbound.go), the user streams
// (streams.go), the acknowledgement timer. What outlives the connection
// (sequence numbers, unacknowledged frames, type tables) is its
// sessionState (sessionstate.go). run starts its goroutines; closeWith
// ends it with a reason; goodbye drains it before a graceful close. Once
// every goroutine has returned, run closes done and reports sessionClosed
// to the controller.
//
// Ownership: the controller owns the session: it creates, establishes and
// retires it. The session's goroutines only do I/O and report back with
// messages. The fields under mu (closing state, error, goodbye bookkeeping,
// user stream count) are shared with those goroutines and with senders;
// acked (the positions last acknowledged) is under ackMu, shared by the
// acknowledgement timer and the goodbye.

package dist

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// session is the dist state shared with a peer over one QUIC connection
// past both handshakes: its control stream, data streams, type tables and
// user streams. The controller actor owns it; goroutines here only do I/O
// and report back to the controller with messages.
type session struct {
	mgr  *Manager
	ep   *endpoint
	peer string
	conn *transport.Conn
	// state is what outlives this connection (sessionstate.go); prev is
	// the connection before this one in the same session, whose goroutines
	// must end before this one's readers and writers start.
	state *sessionState
	prev  *session
	// done is closed once every goroutine of this connection returned.
	done chan struct{}
	// ackTimer runs ackTick ackDelay after the first data frame since the
	// last SessionAck (ackPending); acked is what that sent, under ackMu.
	ackTimer   *time.Timer
	ackPending atomic.Bool
	ackMu      sync.Mutex
	acked      map[uint32]uint64

	controlReader *bufio.Reader // may hold bytes read past the handshake
	role          transport.Role
	inc           Incarnation // peer incarnation
	caps          uint64      // peer capabilities
	// maxSend is the largest message this session sends: the smaller of
	// this node's MaxMessageSize and the one the peer announced.
	maxSend int
	start   time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of this session

	writers       []*streamWriter
	controlWriter *streamWriter

	activity     atomic.Uint64 // bumped per batch written or frame read
	remotePinned atomic.Bool   // the peer holds this session pinned
	// counters is the endpoint's, for metrics; nil without them.
	counters *peerCounters
	// retired: the controller let go of this session (retire) and will
	// not read its sessionClosed; the supervisor then sends none, which
	// would only be a dead letter once the controller has stopped.
	retired atomic.Bool

	mu           sync.Mutex
	closing      bool // no new sends; draining or closed
	err          error
	reason       NodeDownReason
	peerGoodbye  *caskpb.Goodbye
	inboundData  int // data streams the peer opened
	finishedData int // ... of which reached their end
	inboundDone  chan struct{}
	goodbyeSent  bool
	// user stream slots per direction (streams.go): streams this node
	// opened, streams the peer opened
	userStreamsOut int
	userStreamsIn  int
	// userStreams routes credit grants: QUIC stream ID → user stream
	// whose write side is open (streams_credit.go).
	userStreams map[int64]*Stream
	// streamsStopped: the supervisor waits for the session's goroutines,
	// so no user stream starts one any more.
	streamsStopped bool
}

func newSession(m *Manager, ep *endpoint, st *sessionState, conn *transport.Conn, ctrl *transport.Stream, br *bufio.Reader, caps uint64, peerMax uint32) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		mgr: m, ep: ep, state: st, peer: ep.name, conn: conn, controlReader: br, role: conn.Role(),
		inc: st.peerInc, caps: caps, start: time.Now(), ctx: ctx, cancel: cancel,
		inboundDone: make(chan struct{}),
		done:        make(chan struct{}),
		maxSend:     m.cfg.MaxMessageSize,
		counters:    ep.counters,
	}
	if st.lastConn != nil {
		s.prev = st.lastConn
	}
	s.ackTimer = time.AfterFunc(time.Hour, s.ackTick)
	s.ackTimer.Stop()
	st.lastConn = s
	if peerMax > 0 && int(peerMax) < s.maxSend {
		s.maxSend = int(peerMax)
	}
	s.writers = make([]*streamWriter, m.cfg.DataStreams)
	for i := range s.writers {
		i := i
		s.writers[i] = newStreamWriter(s, i, st.out[i], st.sequenced, func(first uint64) (io.WriteCloser, error) { return s.openData(i, first) })
	}
	s.controlWriter = newStreamWriter(s, -1, &outStream{}, false, func(uint64) (io.WriteCloser, error) { return ctrl, nil })
	return s
}

func (s *session) log() *slog.Logger {
	return s.mgr.log.With("peer", s.peer)
}

// run starts the readers and the supervisor. When the connection ends for
// any reason the supervisor reports sessionClosed to the controller once
// every goroutine of the session has returned.
func (s *session) run(controller *actor.PID) {
	s.wg.Add(3)
	go s.acceptData()
	go s.readControl()
	go s.acceptUser()
	s.mgr.wg.Add(1)
	go func() {
		defer s.mgr.wg.Done()
		select {
		case <-s.ctx.Done():
		case <-s.conn.Context().Done():
			s.fail(context.Cause(s.conn.Context()))
		}
		s.closeWriters()
		s.stopStreams()
		s.wg.Wait()
		s.ackTimer.Stop()
		close(s.done)
		s.mu.Lock()
		err, reason := s.err, s.reason
		s.mu.Unlock()
		if !s.retired.Load() {
			s.mgr.system.Root.Send(controller, &sessionClosed{s: s, err: err, reason: reason})
		}
	}()
}

// startResend starts, once the previous connection's goroutines ended,
// the writer of every data stream with frames the peer has not
// acknowledged: they are resent even if nothing new is sent.
func (s *session) startResend() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.prev != nil {
			select {
			case <-s.prev.done:
			case <-s.ctx.Done():
				return
			}
		}
		for i, w := range s.writers {
			if s.state.out[i].pendingFrames() {
				w.start()
			}
		}
	}()
}

// fail ends the session abruptly with err. The first error wins.
func (s *session) fail(err error) {
	s.closeWith(err, reasonFor(err), transport.CodeInternal)
}

func reasonFor(err error) NodeDownReason {
	switch {
	case errors.Is(err, ErrProtocol), errors.Is(err, transport.ErrMalformedFrame), errors.Is(err, transport.ErrFrameTooLarge):
		return ReasonProtocolError
	case errors.Is(err, ErrStopped):
		return ReasonShutdown
	}
	var ce *transport.CloseError
	if errors.As(err, &ce) && ce.Remote {
		switch ce.Code {
		case transport.CodeShutdown:
			return ReasonPeerShutdown
		case transport.CodeIdle:
			return ReasonIdle
		case transport.CodeProtocolViolation:
			return ReasonProtocolError
		}
	}
	return ReasonConnectionLost
}

func (s *session) closeWith(err error, reason NodeDownReason, code transport.ErrorCode) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if err == nil {
		err = ErrConnectionLost
	}
	s.err, s.reason, s.closing = err, reason, true
	if g := s.peerGoodbye; g != nil && reason == ReasonConnectionLost {
		// The peer said why it closes; report that rather than the
		// transport's view of the close.
		s.reason = goodbyeReason(g.GetReason())
	}
	s.mu.Unlock()
	if code == transport.CodeInternal && reason == ReasonProtocolError {
		code = transport.CodeProtocolViolation
	}
	s.conn.CloseWithError(code, string(s.reason)+": "+err.Error())
	s.cancel()
	s.closeWriters()
}

func goodbyeReason(r caskpb.GoodbyeReason) NodeDownReason {
	switch r {
	case caskpb.GoodbyeReason_GOODBYE_REASON_IDLE:
		return ReasonIdle
	default:
		return ReasonPeerShutdown
	}
}

func (s *session) closeWriters() {
	for _, w := range s.writers {
		w.close()
	}
	s.controlWriter.close()
}

// isClosing reports whether the session takes no more sends.
func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// goodbye drains this side: every data writer flushes and finishes its
// stream, the peer acknowledges every frame (on a sequenced session), then
// Goodbye goes out. The control stream stays open, carrying
// acknowledgements, until the inbound side is complete too; then it is
// finished. It returns then, or after ShutdownGrace.
func (s *session) goodbye(reason caskpb.GoodbyeReason) {
	s.mu.Lock()
	s.closing = true
	sent := s.goodbyeSent
	s.goodbyeSent = true
	s.mu.Unlock()
	if sent {
		return
	}
	timer := time.NewTimer(s.mgr.cfg.ShutdownGrace)
	defer timer.Stop()
	opened := 0
	for _, w := range s.writers {
		select {
		case <-w.close():
		case <-timer.C:
			return
		case <-s.ctx.Done():
			return
		}
		w.mu.Lock()
		if w.opened {
			opened++
		}
		w.mu.Unlock()
	}
	if s.state.sequenced {
		// Wait for the acknowledgements, so what the peer read is not
		// counted undelivered when the session ends.
		tick := time.NewTicker(ackDelay)
		for s.state.unacknowledged() > 0 {
			select {
			case <-tick.C:
			case <-timer.C:
				tick.Stop()
				return
			case <-s.ctx.Done():
				tick.Stop()
				return
			}
		}
		tick.Stop()
	}
	if s.sendControl(&caskpb.Control{Body: &caskpb.Control_Goodbye{Goodbye: &caskpb.Goodbye{Reason: reason, DataStreams: uint32(opened)}}}) != nil {
		return
	}
	select {
	case <-s.inboundDone:
	case <-timer.C:
		return
	case <-s.ctx.Done():
		return
	}
	if s.state.sequenced {
		s.flushAck()
	}
	select {
	case <-s.controlWriter.close():
	case <-timer.C:
	case <-s.ctx.Done():
	}
}
