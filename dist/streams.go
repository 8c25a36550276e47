package dist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// Limits and codes of tagged user streams.
const (
	// MaxTagLength bounds a user stream tag, in bytes.
	MaxTagLength = 128
	// ReservedTagPrefix starts tags Cask keeps for itself.
	ReservedTagPrefix = "cask:"
	// userStreamHeaderTimeout bounds how long an inbound user stream may
	// take to send its tag.
	userStreamHeaderTimeout = 5 * time.Second

	// StreamCodeRefused resets a user stream the node refused.
	StreamCodeRefused transport.ErrorCode = 0x100
	// StreamCodeAcceptorGone resets user streams whose acceptor died.
	StreamCodeAcceptorGone transport.ErrorCode = 0x101
	// StreamCodeClosed resets the read side of a stream closed locally.
	StreamCodeClosed transport.ErrorCode = 0x102
)

// Errors of user streams.
var (
	// ErrTagInUse: another acceptor holds the tag on this node.
	ErrTagInUse = errors.New("dist: stream tag in use")
	// ErrReservedTag: tags starting with "cask:" are Cask's own.
	ErrReservedTag = errors.New("dist: stream tag reserved")
	// ErrBadTag: the tag is empty or longer than MaxTagLength.
	ErrBadTag = errors.New("dist: bad stream tag")
	// ErrUnknownTag: the peer has no acceptor for the tag.
	ErrUnknownTag = errors.New("dist: no acceptor for stream tag")
	// ErrStreamLimit: MaxUserStreams user streams in that direction hold
	// their slots (see Stream for when a slot is freed); this node's own
	// count or the peer's refusal.
	ErrStreamLimit = errors.New("dist: too many user streams")
	// ErrStreamsUnsupported: the peer does not speak the user stream
	// protocol this node does (flow control by credit grants), so no user
	// stream is opened to or accepted from it.
	ErrStreamsUnsupported = errors.New("dist: peer does not support user streams with credit flow control")
)

// StreamOpened is sent to a tag's acceptor for every inbound user stream.
// The acceptor owns Stream and must Close it.
type StreamOpened struct {
	Stream *Stream
	From   string
}

// Stream is a tagged user stream: a QUIC stream on the peer's dist
// connection with flow control of its own on top of QUIC's (a receive
// window of Config.UserStreamWindow bytes per stream and direction, see
// docs/streams.md), so a stream nobody reads never stalls actor messages
// or other streams. It rides through connection migration. Reads and writes after
// the connection is lost fail with an error matching ErrConnectionLost.
//
// Slots: each node allows Config.MaxUserStreams streams it opened and,
// separately, MaxUserStreams streams the peer opened. A stream holds a
// slot on both nodes while data may still flow from opener to acceptor:
// the opener's slot is freed when it finishes writing (Close or
// CloseWrite) or the acceptor stops reading (its Close); the acceptor's
// when it has seen the opener's end (a Read returned io.EOF), when it
// calls Close, or when a Read fails because the stream was reset. A lost
// connection frees every slot. So after the opener's Close a new stream
// to the same peer fits once the acceptor has read to the end or closed;
// until then the peer refuses it with ErrStreamLimit. While a stream
// holds a slot it pins the session against idle reaping.
type Stream struct {
	st      *transport.Stream
	br      *bufio.Reader // holds bytes read past the preamble; only receive reads it
	sess    *session
	tag     string
	inbound bool // the peer opened it

	// Receive side (streams_credit.go).
	rmu          sync.Mutex
	recv         recvAccount
	ring         []byte // recv.window bytes, allocated when the first bytes arrive
	head         int    // first buffered byte in ring
	rerr         error  // the receive side's end, reported after the buffered bytes
	readDeadline time.Time
	readable     chan struct{} // 1-buffered: bytes, end, or a new deadline

	// Send side.
	smu           sync.Mutex
	send          sendAccount
	writeDeadline time.Time
	writable      chan struct{} // 1-buffered: credit, or a new deadline

	closeOnce sync.Once
	slotOnce  sync.Once
}

// newStream makes a user stream past its preamble; window is this node's
// receive window for it, peerWindow the one the peer announced.
func newStream(st *transport.Stream, br *bufio.Reader, sess *session, tag string, inbound bool, window, peerWindow int) *Stream {
	s := &Stream{
		st: st, br: br, sess: sess, tag: tag, inbound: inbound,
		recv:     recvAccount{window: window},
		send:     sendAccount{window: peerWindow, credit: peerWindow},
		readable: make(chan struct{}, 1),
		writable: make(chan struct{}, 1),
	}
	if !inbound {
		// The opener's slot: free once its write side is finished, by
		// Close or CloseWrite, or by the acceptor's Close (STOP_SENDING).
		context.AfterFunc(st.WriteContext(), s.freeSlot)
	}
	sess.startReceiving(s)
	return s
}

// freeSlot gives the stream's slot back, once.
func (s *Stream) freeSlot() {
	s.slotOnce.Do(func() { s.sess.streamDone(s.inbound) })
}

// Peer is the node at the other end.
func (s *Stream) Peer() string { return s.sess.peer }

// Tag is the stream's tag.
func (s *Stream) Tag() string { return s.tag }

// Read implements io.Reader. It returns bytes the peer wrote, which a
// goroutine of the stream has already taken off the connection; reading
// them lets the peer write as many more.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.read(p)
	if err != nil && s.inbound && !errors.Is(err, os.ErrDeadlineExceeded) {
		s.freeSlot() // the opener's end (io.EOF) or a reset: nothing more comes
	}
	return n, s.wrap(err)
}

// Write implements io.Writer. It writes no more than the peer's window
// ahead of what the peer's reader consumed, and blocks until it may write
// the rest (or the write deadline passes, the stream is closed or reset,
// or the connection is lost).
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.write(p)
	return n, s.wrap(err)
}

// CloseWrite finishes the write side: the peer reads io.EOF after the
// data written so far. Reading goes on.
func (s *Stream) CloseWrite() error { return s.wrap(s.st.Close()) }

// Close finishes the write side and stops reading; it frees this node's
// slot (see Stream) and so the stream's pin on the session. It is safe to
// call twice.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.st.Close()
		s.st.CancelRead(StreamCodeClosed)
		s.recvFail(&transport.StreamError{Code: StreamCodeClosed})
		s.freeSlot()
	})
	return s.wrap(err)
}

// SetDeadline sets the read and write deadlines.
func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline; a Read waiting past it fails
// with an error matching os.ErrDeadlineExceeded.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.rmu.Lock()
	s.readDeadline = t
	s.rmu.Unlock()
	wake(s.readable)
	return nil
}

// SetWriteDeadline sets the write deadline, for waiting on the peer's
// credit and on QUIC alike.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.smu.Lock()
	s.writeDeadline = t
	s.smu.Unlock()
	wake(s.writable)
	return s.st.SetWriteDeadline(t)
}

// LocalAddr and RemoteAddr are the connection's current path.
func (s *Stream) LocalAddr() net.Addr { return s.sess.conn.LocalAddr() }

// RemoteAddr is the peer's address on the connection's current path.
func (s *Stream) RemoteAddr() net.Addr { return s.sess.conn.RemoteAddr() }

func (s *Stream) wrap(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	connGone := s.sess.conn.Context().Err() != nil || s.sess.ctx.Err() != nil || errors.Is(err, transport.ErrPeerClosed) ||
		errors.Is(err, transport.ErrIdleTimeout) || errors.Is(err, transport.ErrClosed)
	if connGone && !errors.Is(err, ErrConnectionLost) {
		return fmt.Errorf("%w: stream %q to %s: %w", ErrConnectionLost, s.tag, s.sess.peer, err)
	}
	return err
}

// ValidateTag checks a user stream tag.
func ValidateTag(tag string) error {
	switch {
	case tag == "" || len(tag) > MaxTagLength:
		return fmt.Errorf("%w: %q (1..%d bytes)", ErrBadTag, tag, MaxTagLength)
	case strings.HasPrefix(tag, ReservedTagPrefix):
		return fmt.Errorf("%w: %q", ErrReservedTag, tag)
	}
	return nil
}

// acceptors is the node's tag → acceptor table.
type acceptors struct {
	mu   sync.Mutex
	tags map[string]*actor.PID
}

func (a *acceptors) get(tag string) *actor.PID {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tags[tag]
}

// RegisterAcceptor makes pid the acceptor of inbound user streams tagged
// tag: it receives *StreamOpened. One acceptor per tag; when it stops it is
// unregistered and later streams for the tag are refused.
func (m *Manager) RegisterAcceptor(tag string, pid *actor.PID) error {
	if err := ValidateTag(tag); err != nil {
		return err
	}
	if pid == nil {
		return errors.New("dist: RegisterAcceptor needs a PID")
	}
	m.acceptors.mu.Lock()
	if m.acceptors.tags == nil {
		m.acceptors.tags = make(map[string]*actor.PID)
	}
	if _, taken := m.acceptors.tags[tag]; taken {
		m.acceptors.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrTagInUse, tag)
	}
	m.acceptors.tags[tag] = pid
	m.acceptors.mu.Unlock()
	m.system.Root.Send(m.pid, &watchAcceptor{pid: pid})
	return nil
}

// UnregisterAcceptor removes pid as acceptor of tag.
func (m *Manager) UnregisterAcceptor(tag string, pid *actor.PID) {
	m.acceptors.mu.Lock()
	defer m.acceptors.mu.Unlock()
	if cur := m.acceptors.tags[tag]; cur != nil && cur.Equal(pid) {
		delete(m.acceptors.tags, tag)
	}
}

// acceptorDied drops every tag held by pid.
func (m *Manager) acceptorDied(pid *actor.PID) {
	m.acceptors.mu.Lock()
	defer m.acceptors.mu.Unlock()
	for tag, cur := range m.acceptors.tags {
		if cur.Equal(pid) {
			delete(m.acceptors.tags, tag)
		}
	}
}

// watchAcceptor asks the dist manager actor to watch an acceptor.
type watchAcceptor struct{ pid *actor.PID }

// OpenStream opens a user stream tagged tag to peer, opening the session
// on demand, and returns once the peer's acceptor has it (one round trip)
// or the peer refused it (ErrUnknownTag, ErrStreamLimit, ErrBadTag).
func (m *Manager) OpenStream(ctx context.Context, peer, tag string) (*Stream, error) {
	if err := ValidateTag(tag); err != nil {
		return nil, err
	}
	if err := m.Connect(ctx, peer); err != nil {
		return nil, err
	}
	s := m.endpoint(peer).sess.Load()
	if s == nil || s.isClosing() {
		return nil, peerErr("open stream", peer, ErrNoConn)
	}
	if !s.speaksStreamCredit() {
		return nil, peerErr("open stream", peer, ErrStreamsUnsupported)
	}
	if !s.streamStart(false) {
		return nil, peerErr("open stream", peer, fmt.Errorf("%w: %d opened by %s hold their slots", ErrStreamLimit, m.cfg.MaxUserStreams, m.name))
	}
	st, err := s.openUser(ctx, tag)
	if err != nil {
		s.streamDone(false)
		return nil, peerErr("open stream", peer, err)
	}
	return st, nil
}

func (s *session) openUser(ctx context.Context, tag string) (*Stream, error) {
	qs, err := s.conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	window := s.mgr.cfg.UserStreamWindow
	hdr, _ := proto.Marshal(&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_USER, Tag: tag, ReceiveWindow: uint32(window)})
	if dl, ok := ctx.Deadline(); ok {
		qs.SetDeadline(dl)
	}
	fail := func(err error) (*Stream, error) {
		qs.CancelWrite(StreamCodeClosed)
		qs.CancelRead(StreamCodeClosed)
		return nil, err
	}
	if _, err := qs.Write(transport.AppendFrame(nil, hdr)); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(qs, 32<<10)
	frame, err := transport.ReadFrame(br, nil, 4096)
	if err != nil {
		return fail(fmt.Errorf("stream %q: no answer from the acceptor side: %w", tag, err))
	}
	var acc caskpb.StreamAccept
	if err := proto.Unmarshal(frame, &acc); err != nil {
		return fail(fmt.Errorf("%w: stream accept: %v", ErrProtocol, err))
	}
	switch acc.GetRefusal() {
	case caskpb.StreamRefusal_STREAM_REFUSAL_NONE:
	case caskpb.StreamRefusal_STREAM_REFUSAL_UNKNOWN_TAG:
		return fail(fmt.Errorf("%w: %q: %s", ErrUnknownTag, tag, acc.GetDetail()))
	case caskpb.StreamRefusal_STREAM_REFUSAL_LIMIT:
		return fail(fmt.Errorf("%w: %s", ErrStreamLimit, acc.GetDetail()))
	default:
		return fail(fmt.Errorf("%w: %q: %s", ErrBadTag, tag, acc.GetDetail()))
	}
	peerWindow, err := checkWindow(acc.GetReceiveWindow())
	if err != nil {
		return fail(err)
	}
	qs.SetDeadline(time.Time{})
	return newStream(qs, br, s, tag, false, window, peerWindow), nil
}

// acceptUser takes the peer's user streams and hands each to its tag's
// acceptor.
func (s *session) acceptUser() {
	defer s.wg.Done()
	for {
		qs, err := s.conn.AcceptStream(s.ctx)
		if err != nil {
			return // the session's other loops report the cause
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveUser(qs)
		}()
	}
}

func (s *session) serveUser(qs *transport.Stream) {
	qs.SetReadDeadline(time.Now().Add(userStreamHeaderTimeout))
	br := bufio.NewReaderSize(qs, 32<<10)
	frame, err := transport.ReadFrame(br, nil, 4096)
	var hdr caskpb.StreamHeader
	if err == nil {
		err = proto.Unmarshal(frame, &hdr)
	}
	if err != nil || hdr.GetKind() != caskpb.StreamKind_STREAM_KIND_USER {
		s.log().Warn("bad user stream preamble", "err", err, "kind", hdr.GetKind())
		qs.CancelRead(StreamCodeRefused)
		qs.CancelWrite(StreamCodeRefused)
		return
	}
	qs.SetReadDeadline(time.Time{})
	tag := hdr.GetTag()
	if !s.speaksStreamCredit() {
		// Without the capability the peer would not honour credit; it
		// cannot read a refusal it does not know either.
		s.log().Warn("refused user stream: the peer does not speak credit flow control", "tag", tag, "err", ErrStreamsUnsupported)
		qs.CancelRead(StreamCodeRefused)
		qs.CancelWrite(StreamCodeRefused)
		return
	}
	peerWindow, werr := checkWindow(hdr.GetReceiveWindow())
	refuse := func(r caskpb.StreamRefusal, detail string) {
		s.log().Info("refused user stream", "tag", tag, "why", r, "detail", detail)
		b, _ := proto.Marshal(&caskpb.StreamAccept{Refusal: r, Detail: detail})
		qs.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = qs.Write(transport.AppendFrame(nil, b))
		qs.Close()
		qs.CancelRead(StreamCodeRefused)
	}
	if err := ValidateTag(tag); err != nil {
		refuse(caskpb.StreamRefusal_STREAM_REFUSAL_BAD_TAG, err.Error())
		return
	}
	if werr != nil {
		s.log().Warn("bad user stream preamble", "tag", tag, "err", werr)
		qs.CancelRead(StreamCodeRefused)
		qs.CancelWrite(StreamCodeRefused)
		return
	}
	pid := s.mgr.acceptors.get(tag)
	if pid == nil {
		refuse(caskpb.StreamRefusal_STREAM_REFUSAL_UNKNOWN_TAG, "no acceptor on "+s.mgr.name)
		return
	}
	if !s.streamStart(true) {
		refuse(caskpb.StreamRefusal_STREAM_REFUSAL_LIMIT, fmt.Sprintf("%d user streams opened by %s hold their slots on %s",
			s.mgr.cfg.MaxUserStreams, s.peer, s.mgr.name))
		return
	}
	window := s.mgr.cfg.UserStreamWindow
	b, _ := proto.Marshal(&caskpb.StreamAccept{ReceiveWindow: uint32(window)})
	if _, err := qs.Write(transport.AppendFrame(nil, b)); err != nil {
		s.streamDone(true)
		return
	}
	s.mgr.system.Root.Send(pid, &StreamOpened{Stream: newStream(qs, br, s, tag, true, window, peerWindow), From: s.peer})
}

// speaksStreamCredit reports whether the peer announced credit flow
// control of user streams in the dist handshake.
func (s *session) speaksStreamCredit() bool {
	return s.caps&(1<<caskpb.Capability_CAPABILITY_STREAM_CREDIT) != 0
}

// checkWindow validates a receive window a peer announced.
func checkWindow(w uint32) (int, error) {
	if w < minUserStreamWindow || w > maxUserStreamWindow {
		return 0, fmt.Errorf("%w: user stream receive window %d out of range %d..%d", ErrProtocol, w, minUserStreamWindow, maxUserStreamWindow)
	}
	return int(w), nil
}

// streamStart takes a user stream slot in one direction (inbound: opened
// by the peer) and so pins the session; false when all are taken.
func (s *session) streamStart(inbound bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.userStreamsOut
	if inbound {
		n = &s.userStreamsIn
	}
	if *n >= s.mgr.cfg.MaxUserStreams {
		return false
	}
	*n++
	s.activity.Add(1)
	return true
}

// streamDone frees a slot taken by streamStart.
func (s *session) streamDone(inbound bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.userStreamsOut
	if inbound {
		n = &s.userStreamsIn
	}
	if *n > 0 {
		*n--
	}
	s.activity.Add(1)
}

// hasUserStreams reports whether user streams keep the session pinned.
func (s *session) hasUserStreams() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userStreamsOut > 0 || s.userStreamsIn > 0
}
