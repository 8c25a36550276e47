package dist

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// session is one established dist channel: a QUIC connection past both
// handshakes, its control stream and its data streams. The controller
// actor owns it; goroutines here only do I/O and report back to the
// controller with messages.
type session struct {
	mgr  *Manager
	ep   *endpoint
	peer string
	conn *transport.Conn
	ctrl *transport.Stream
	br   *bufio.Reader // control stream reader; may hold bytes read past the handshake
	role transport.Role
	inc  uint64 // peer incarnation
	caps uint64 // peer capabilities
	// maxSend is the largest message this session sends: the smaller of
	// this node's MaxMessageSize and the one the peer announced.
	maxSend int
	start   time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of this session

	writers []*streamWriter
	control *streamWriter

	activity     atomic.Uint64 // bumped per batch written or frame read
	remotePinned atomic.Bool   // the peer holds this channel pinned

	mu           sync.Mutex
	closing      bool // no new sends; draining or closed
	err          error
	reason       NodeDownReason
	peerGoodbye  *caskpb.Goodbye
	inboundData  int // data streams the peer opened
	finishedData int // ... of which reached their end
	inboundDone  chan struct{}
	goodbyeSent  bool
	userStreams  int // live user streams, both directions
}

func newSession(m *Manager, ep *endpoint, conn *transport.Conn, ctrl *transport.Stream, br *bufio.Reader, inc, caps uint64, peerMax uint32) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		mgr: m, ep: ep, peer: ep.name, conn: conn, ctrl: ctrl, br: br, role: conn.Role(),
		inc: inc, caps: caps, start: time.Now(), ctx: ctx, cancel: cancel,
		inboundDone: make(chan struct{}),
		maxSend:     m.cfg.MaxMessageSize,
	}
	if peerMax > 0 && int(peerMax) < s.maxSend {
		s.maxSend = int(peerMax)
	}
	s.writers = make([]*streamWriter, m.cfg.DataStreams)
	for i := range s.writers {
		i := i
		s.writers[i] = newStreamWriter(s, i, func() (io.WriteCloser, error) { return s.openData(i) })
	}
	s.control = newStreamWriter(s, -1, func() (io.WriteCloser, error) { return ctrl, nil })
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
		s.wg.Wait()
		s.mu.Lock()
		err, reason := s.err, s.reason
		s.mu.Unlock()
		s.mgr.system.Root.Send(controller, &sessionClosed{s: s, err: err, reason: reason})
	}()
}

func (s *session) openData(index int) (io.WriteCloser, error) {
	st, err := s.conn.OpenUniStream(s.ctx)
	if err != nil {
		return nil, err
	}
	hdr, _ := proto.Marshal(&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_DATA, Index: uint32(index)})
	if _, err := st.Write(transport.AppendFrame(nil, hdr)); err != nil {
		return nil, err
	}
	return st, nil
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
	s.control.close()
}

// isClosing reports whether the session takes no more sends.
func (s *session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// send appends one encoded message to the data stream chosen by the
// target. It returns errSessionClosing when the session no longer takes
// sends; the caller then queues the message for the next channel.
func (s *session) send(o *outbound) error {
	if len(o.payload) > s.maxSend {
		return s.tooLarge(o.typeName, len(o.payload))
	}
	w, f, err := s.beginFrame(o.target, o.sender, o.typeName, o.header, o.system, len(o.payload))
	if err != nil {
		return err
	}
	w.buf = append(w.buf, o.payload...)
	w.endFrame(f, o.target.RequestId, o.header, o.system)
	return nil
}

// sendMessage is send for a message not yet encoded: it is encoded
// straight into the stream buffer, with no intermediate buffer or copy.
// The encoder runs in this frame, between beginFrame and endFrame, so the
// deepest point of the send path is as shallow as it can be (see
// endpoint.send).
func (s *session) sendMessage(target, sender *actor.PID, pm proto.Message, header []string, system bool) error {
	typeName := string(pm.ProtoReflect().Descriptor().FullName())
	size := proto.Size(pm)
	if size > s.maxSend {
		return s.tooLarge(typeName, size)
	}
	w, f, err := s.beginFrame(target, sender, typeName, header, system, size)
	if err != nil {
		return err
	}
	at := len(w.buf)
	out, err := encodeCached.MarshalAppend(w.buf, pm)
	if err != nil || len(out)-at != size {
		w.abortFrame(f)
		return encodeError(typeName, err)
	}
	w.buf = out
	w.endFrame(f, target.RequestId, header, system)
	return nil
}

//go:noinline
func (s *session) tooLarge(typeName string, size int) error {
	if s.maxSend == s.mgr.cfg.MaxMessageSize {
		return tooLarge(typeName, size, s.maxSend, "")
	}
	return tooLarge(typeName, size, s.maxSend, s.peer)
}

// frameStart is what endFrame and abortFrame need of a begun frame.
type frameStart struct {
	start    int    // offset of the frame in buf
	typeName string // the message's type
	typeID   uint32
	defined  bool // this frame defines typeID
}

// beginFrame locks the writer for target's stream and appends a frame's
// length prefix and every envelope field up to the payload's length, for
// a payload of plen bytes. The caller appends the payload and calls
// endFrame (or abortFrame); the writer stays locked until then.
func (s *session) beginFrame(target, sender *actor.PID, typeName string, header []string, system bool, plen int) (*streamWriter, frameStart, error) {
	w := s.writers[streamIndex(target.Id, len(s.writers))]
	if !w.lock() {
		return nil, frameStart{}, errSessionClosing
	}
	f := frameStart{start: len(w.buf), typeName: typeName}
	id, known := w.lastTypeID, w.lastType == typeName && typeName != ""
	if !known {
		id, known = w.types[typeName]
	}
	e := envelope{
		target:          target.Id,
		targetRequestID: target.RequestId,
		typeID:          id,
		system:          system,
		header:          header,
	}
	if !known {
		id = w.defineType(typeName)
		e.typeID, e.typeName = id, typeName
		f.defined = true
	}
	f.typeID = id
	if sender != nil {
		if sender.Address != s.mgr.name {
			e.senderAddress = sender.Address
		}
		e.senderID, e.senderRequestID = sender.Id, sender.RequestId
	}
	w.buf = appendEnvelopeHead(w.buf, &e, plen)
	return w, f, nil
}

// endFrame appends the envelope fields after the payload, unlocks the
// writer and wakes its goroutine.
func (w *streamWriter) endFrame(f frameStart, targetRequestID uint32, header []string, system bool) {
	e := envelope{targetRequestID: targetRequestID, header: header, system: system}
	w.buf = appendEnvelopeTail(w.buf, &e)
	w.lastType, w.lastTypeID = f.typeName, f.typeID
	w.unlockAndSignal()
}

// abortFrame removes a begun frame (and the type id it defined) and
// unlocks the writer.
func (w *streamWriter) abortFrame(f frameStart) {
	w.buf = w.buf[:f.start]
	if f.defined {
		delete(w.types, f.typeName)
	}
	w.mu.Unlock()
}

// encodeError wraps a failed in-place encode; err nil means the encoded
// size differed from proto.Size.
//
//go:noinline
func encodeError(typeName string, err error) error {
	if err == nil {
		err = errChangedWhileEncoding
	}
	return fmt.Errorf("%w: %s: %w", ErrEncode, typeName, err)
}

// encodeCached encodes a message whose size was just computed by
// proto.Size, without computing it again.
var encodeCached = proto.MarshalOptions{UseCachedSize: true}

var errChangedWhileEncoding = errors.New("the message changed while it was encoded (was it modified after Send?)")

var errSessionClosing = errors.New("dist: session closing")

// streamIndex picks the data stream for a target PID id (FNV-1a). All
// messages to one actor share a stream, so they arrive in the order sent.
func streamIndex(id string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// sendControl writes one control frame.
func (s *session) sendControl(c *caskpb.Control) error {
	b, err := proto.Marshal(c)
	if err != nil {
		return err
	}
	w := s.control
	if !w.lock() {
		return errSessionClosing
	}
	w.buf = transport.AppendFrame(w.buf, b)
	w.unlockAndSignal()
	return nil
}

// acceptData accepts the peer's data streams and starts a reader on each.
func (s *session) acceptData() {
	defer s.wg.Done()
	for {
		rs, err := s.conn.AcceptUniStream(s.ctx)
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		s.inboundData++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.readData(rs)
	}
}

func (s *session) readData(rs *transport.ReceiveStream) {
	defer s.wg.Done()
	br := bufio.NewReaderSize(rs, 64<<10)
	max := s.mgr.cfg.MaxMessageSize + 64<<10
	var buf []byte
	frame, err := transport.ReadFrame(br, buf, 1024)
	if err != nil {
		s.readError(err, "data stream header")
		return
	}
	var hdr caskpb.StreamHeader
	if err := proto.Unmarshal(frame, &hdr); err != nil || hdr.GetKind() != caskpb.StreamKind_STREAM_KIND_DATA {
		s.protocolError(fmt.Errorf("%w: bad data stream header (kind %v, err %v)", ErrProtocol, hdr.GetKind(), err))
		return
	}
	var types []inboundType
	var pids pidCache
	var ids interner
	var e envelope
	for {
		// A frame that is whole in the read buffer is decoded in place;
		// others are copied into buf. Delivery copies everything it keeps
		// (interned ids, the decoded message), so the buffer can move on.
		frame, used := bufferedFrame(br, max)
		if frame == nil {
			frame, err = transport.ReadFrame(br, buf, max)
			if err != nil {
				if err == io.EOF {
					s.dataFinished()
					return
				}
				s.readError(err, "data stream")
				return
			}
			buf = frame[:0]
		}
		if err := decodeEnvelopeInterned(frame, &e, &ids); err != nil {
			s.protocolError(err)
			return
		}
		if err := s.deliver(&e, &types, &pids); err != nil {
			s.protocolError(err)
			return
		}
		if used > 0 {
			br.Discard(used)
		}
		s.activity.Add(1)
	}
}

// bufferedFrame returns the next length-prefixed frame when all of it is
// already in br's buffer, aliasing the buffer, and the number of bytes
// to Discard once the frame is used. It returns nil when the frame is not
// whole, is empty, or its prefix is anything but a minimal varint within
// max; transport.ReadFrame then reads it (and reports any error).
func bufferedFrame(br *bufio.Reader, max int) (frame []byte, used int) {
	b, _ := br.Peek(br.Buffered())
	length, k := binary.Uvarint(b)
	if k <= 0 || length == 0 || length > uint64(max) || (k > 1 && b[k-1] == 0) ||
		length > uint64(len(b)-k) {
		return nil, 0
	}
	end := k + int(length)
	return b[k:end:end], end
}

func (s *session) readError(err error, where string) {
	if errors.Is(err, transport.ErrMalformedFrame) || errors.Is(err, transport.ErrFrameTooLarge) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		s.protocolError(fmt.Errorf("%w: %s: %w", ErrProtocol, where, err))
		return
	}
	s.fail(err)
}

func (s *session) protocolError(err error) {
	s.log().Warn("closing connection: peer broke the protocol", "err", err)
	s.closeWith(err, ReasonProtocolError, transport.CodeProtocolViolation)
}

func (s *session) dataFinished() {
	s.mu.Lock()
	s.finishedData++
	s.checkInboundDoneLocked()
	s.mu.Unlock()
}

func (s *session) checkInboundDoneLocked() {
	g := s.peerGoodbye
	if g == nil || s.finishedData < int(g.GetDataStreams()) {
		return
	}
	select {
	case <-s.inboundDone:
	default:
		close(s.inboundDone)
	}
}

// inboundType is one entry of a stream's type table.
type inboundType struct {
	name string
	mt   protoreflect.MessageType // nil: not registered here
	// goType is the struct type behind a generated message type, whose new
	// values reflect.New makes more cheaply than mt.New; nil for other
	// message types (dynamicpb), which use mt.New.
	goType reflect.Type
}

func newInboundType(name string) inboundType {
	mt, _ := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	return inboundType{name: name, mt: mt, goType: generatedStruct(mt)}
}

// generatedStruct returns the struct type of a generated message type, or
// nil when mt is not one: a new value of it must be a message of type mt.
func generatedStruct(mt protoreflect.MessageType) (t reflect.Type) {
	if mt == nil {
		return nil
	}
	defer func() {
		if recover() != nil {
			t = nil
		}
	}()
	pt := reflect.TypeOf(mt.Zero().Interface())
	if pt == nil || pt.Kind() != reflect.Pointer || pt.Elem().Kind() != reflect.Struct {
		return nil
	}
	m, ok := reflect.New(pt.Elem()).Interface().(proto.Message)
	if !ok || m.ProtoReflect().Type() != mt {
		return nil
	}
	return pt.Elem()
}

// newMessage returns an empty message of type t.
func (t *inboundType) newMessage() proto.Message {
	if t.goType != nil {
		return reflect.New(t.goType).Interface().(proto.Message)
	}
	return t.mt.New().Interface()
}

// maxTypesPerStream bounds a peer-controlled table.
const maxTypesPerStream = 1 << 16

func (s *session) deliver(e *envelope, types *[]inboundType, pids *pidCache) error {
	if e.typeName != "" {
		switch {
		case int(e.typeID) == len(*types) && e.typeID < maxTypesPerStream:
			*types = append(*types, newInboundType(e.typeName))
		case int(e.typeID) < len(*types) && (*types)[e.typeID].name == e.typeName:
		default:
			return fmt.Errorf("%w: type id %d defined out of order", ErrProtocol, e.typeID)
		}
	}
	if int(e.typeID) >= len(*types) {
		return fmt.Errorf("%w: undefined type id %d", ErrProtocol, e.typeID)
	}
	t := &(*types)[e.typeID]
	sender := pids.sender(e, s.peer)
	if t.mt == nil {
		s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_UNKNOWN_TYPE, "no Go type registered for "+t.name)
		return nil
	}
	msg := t.newMessage()
	if err := unmarshalFresh.Unmarshal(e.payload, msg); err != nil {
		s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_DECODE, err.Error())
		return nil
	}
	target := pids.target(e, s.mgr.name)
	if e.system {
		proc, _ := s.mgr.system.ProcessRegistry.GetLocal(e.target)
		switch m := msg.(type) {
		case *actor.Watch:
			if m.Watcher == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "watch without watcher")
				return nil
			}
			s.ep.addInboundWatch(e.target, m.Watcher)
		case *actor.Unwatch:
			if m.Watcher == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "unwatch without watcher")
				return nil
			}
			s.ep.removeInboundWatch(e.target, m.Watcher)
		case *actor.Terminated:
			if m.Who == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "terminated without who")
				return nil
			}
			s.ep.removeOutboundWatch(m.Who, e.target)
		case *actor.Stop:
		default:
			s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, t.name+" is not a system message")
			return nil
		}
		proc.SendSystemMessage(target, msg)
		return nil
	}
	// Root.Send posts straight to the target's mailbox and uses the PID's
	// cached process, so a cached target PID costs no registry lookup.
	if sender == nil && len(e.header) == 0 {
		s.mgr.system.Root.Send(target, msg)
		return nil
	}
	env := &actor.MessageEnvelope{Message: msg, Sender: sender}
	for i := 0; i+1 < len(e.header); i += 2 {
		env.SetHeader(e.header[i], e.header[i+1])
	}
	s.mgr.system.Root.Send(target, env)
	return nil
}

// pidCache keeps the PIDs one reader built, so a stream of messages to
// the same actor (and replies to the same sender) allocates no PID and
// resolves no process per message. PIDs cache their process; protoactor
// drops a cached process that died.
type pidCache struct {
	targets map[string]*actor.PID
	senders map[string]*actor.PID
	// The PIDs of the previous frame: a stream mostly carries one
	// conversation, and the interned ids make the comparison cheap.
	lastTarget, lastSender *actor.PID
}

const pidCacheMax = 4096

// oneShotID reports whether id names a protoactor future ("future$..."),
// which lives for one request: caching its PID or interning its id would
// only fill the caches.
func oneShotID[T string | []byte](id T) bool {
	return len(id) > len(futurePrefix) && string(id[:len(futurePrefix)]) == futurePrefix
}

const futurePrefix = "future$"

func (c *pidCache) target(e *envelope, node string) *actor.PID {
	if e.targetRequestID != 0 {
		return &actor.PID{Address: node, Id: e.target, RequestId: e.targetRequestID}
	}
	return cachedPID(&c.targets, &c.lastTarget, node, e.target)
}

func (c *pidCache) sender(e *envelope, peer string) *actor.PID {
	if e.senderID == "" {
		return nil
	}
	addr := e.senderAddress
	if addr == "" {
		addr = peer
	}
	if e.senderRequestID != 0 || addr != peer {
		return &actor.PID{Address: addr, Id: e.senderID, RequestId: e.senderRequestID}
	}
	return cachedPID(&c.senders, &c.lastSender, peer, e.senderID)
}

// cachedPID returns the PID {addr, id} from cache, or last when it has
// that id, making and caching it otherwise (future ids are made, never
// cached). One cache holds PIDs of a single address.
func cachedPID(cache *map[string]*actor.PID, last **actor.PID, addr, id string) *actor.PID {
	if *last != nil && (*last).Id == id {
		return *last
	}
	if oneShotID(id) {
		return &actor.PID{Address: addr, Id: id}
	}
	p, ok := (*cache)[id]
	if !ok {
		if *cache == nil || len(*cache) >= pidCacheMax {
			*cache = make(map[string]*actor.PID)
		}
		p = &actor.PID{Address: addr, Id: id}
		(*cache)[id] = p
	}
	*last = p
	return p
}

// refuse dead-letters a message that arrived but cannot be delivered and
// tells the sending node why, so it can fail a pending request at once.
func (s *session) refuse(e *envelope, typeName string, sender *actor.PID, reason caskpb.FailureReason, detail string) {
	err := failureError(reason, typeName, detail)
	s.log().Warn("refused inbound message", "target", e.target, "type", typeName, "err", err)
	s.mgr.publishDeadLetter(&actor.PID{Address: s.mgr.name, Id: e.target}, typeName, nil, s.peer, err)
	df := &caskpb.DeliveryFailure{
		Target: e.target, TypeName: typeName, Reason: reason, Detail: detail,
	}
	if sender != nil {
		df.SenderAddress, df.SenderId, df.SenderRequestId = sender.Address, sender.Id, sender.RequestId
	}
	_ = s.sendControl(&caskpb.Control{Body: &caskpb.Control_DeliveryFailure{DeliveryFailure: df}})
}

func failureError(reason caskpb.FailureReason, typeName, detail string) error {
	switch reason {
	case caskpb.FailureReason_FAILURE_REASON_UNKNOWN_TYPE:
		return fmt.Errorf("%w: %s", ErrUnknownType, typeName)
	case caskpb.FailureReason_FAILURE_REASON_DECODE:
		return fmt.Errorf("%w: %s: %s", ErrDecode, typeName, detail)
	case caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE:
		return fmt.Errorf("%w: %s: %s", ErrUnsupportedSystemMessage, typeName, detail)
	}
	return fmt.Errorf("dist: delivery failed: %s: %s", typeName, detail)
}

// readControl reads control frames until the peer finishes the stream.
func (s *session) readControl() {
	defer s.wg.Done()
	var buf []byte
	for {
		frame, err := transport.ReadFrame(s.br, buf, 1<<20)
		if err != nil {
			if err == io.EOF {
				return
			}
			s.readError(err, "control stream")
			return
		}
		buf = frame[:0]
		var c caskpb.Control
		if err := proto.Unmarshal(frame, &c); err != nil {
			s.protocolError(fmt.Errorf("%w: control frame: %v", ErrProtocol, err))
			return
		}
		s.activity.Add(1)
		switch b := c.Body.(type) {
		case *caskpb.Control_DeliveryFailure:
			s.deliveryFailed(b.DeliveryFailure)
		case *caskpb.Control_Goodbye:
			s.mu.Lock()
			s.peerGoodbye = b.Goodbye
			s.checkInboundDoneLocked()
			s.mu.Unlock()
			s.mgr.system.Root.Send(s.ep.controller(), &peerGoodbye{s: s, reason: goodbyeReason(b.Goodbye.GetReason())})
		case *caskpb.Control_Membership:
			if b.Membership.GetFrom() != s.peer {
				s.protocolError(fmt.Errorf("%w: membership message from %q on the channel of %s",
					ErrProtocol, b.Membership.GetFrom(), s.peer))
				return
			}
			if h := s.mgr.membership.Load(); h != nil {
				s.mgr.system.Root.Send(h, &MembershipReceived{From: s.peer, Msg: b.Membership})
			}
		case *caskpb.Control_ChannelPin:
			s.remotePinned.Store(b.ChannelPin.GetPinned())
		case *caskpb.Control_SpawnRequest:
			s.mgr.system.Root.Send(s.ep.controller(), &spawnRequest{s: s, req: b.SpawnRequest})
		case *caskpb.Control_SpawnResponse:
			s.mgr.system.Root.Send(s.ep.controller(), &spawnResponse{s: s, resp: b.SpawnResponse})
		default:
			// Unknown control frames come from newer peers; skip them.
		}
	}
}

func (s *session) deliveryFailed(df *caskpb.DeliveryFailure) {
	err := failureError(df.GetReason(), df.GetTypeName(), df.GetDetail())
	var sender *actor.PID
	if df.GetSenderId() != "" {
		sender = &actor.PID{Address: df.GetSenderAddress(), Id: df.GetSenderId(), RequestId: df.GetSenderRequestId()}
		if sender.Address == "" {
			sender.Address = s.mgr.name
		}
	}
	s.log().Warn("peer refused a message", "target", df.GetTarget(), "type", df.GetTypeName(), "err", err)
	s.mgr.publishDeadLetter(&actor.PID{Address: s.peer, Id: df.GetTarget()}, df.GetTypeName(), sender, s.peer, err)
}

// goodbye drains this side: every data writer flushes and finishes its
// stream, then Goodbye is the last control frame. It returns when the
// inbound side is complete too, or after the grace period.
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
	b, _ := proto.Marshal(&caskpb.Control{Body: &caskpb.Control_Goodbye{Goodbye: &caskpb.Goodbye{Reason: reason, DataStreams: uint32(opened)}}})
	w := s.control
	w.mu.Lock()
	if !w.closing {
		if !w.started {
			w.started = true
			s.wg.Add(1)
			go w.run()
		}
		w.buf = transport.AppendFrame(w.buf, b)
	}
	w.unlockAndSignal()
	select {
	case <-w.close():
	case <-timer.C:
		return
	case <-s.ctx.Done():
		return
	}
	select {
	case <-s.inboundDone:
	case <-timer.C:
	case <-s.ctx.Done():
	}
}

// unmarshalFresh decodes into a message just created: Merge skips the
// Reset that a fresh message does not need.
var unmarshalFresh = proto.UnmarshalOptions{Merge: true}
