// The inbound path: readers, delivery, type tables and PID caches.
//
// acceptData starts one reader goroutine per data stream the peer opens;
// readData decodes each frame (wire.go) and deliver posts the message
// straight to the target's mailbox with the original sender and headers.
// readControl reads the control stream: delivery failures, goodbye,
// membership, pins, remote spawn, acknowledgements (SessionAck). Frames a
// resumed stream repeats are dropped by position; the ack timer
// acknowledges what arrived.
//
// Ownership: each reader holds its stream's inbound session state (type
// table, PID cache, interner, received count; sessionstate.go) while it
// reads, without locks; the count is atomic for the ack timer. Readers report session events (goodbye, spawn
// requests and responses, the end of the session) to the controller as
// messages. Two stated exceptions, each a hand-off point with its own lock:
// the endpoint's watch tables, updated before a Watch, Unwatch or
// Terminated is delivered (endpoint.go says why), and the session's
// inbound stream counters under session.mu, which the goodbye exchange
// waits on.

package dist

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// acceptData accepts the peer's data streams and starts a reader on each.
// On a resumed session it first waits for the previous connection's
// readers to end: a stream's inbound state has one reader at a time.
func (s *session) acceptData() {
	defer s.wg.Done()
	if s.prev != nil {
		select {
		case <-s.prev.done:
		case <-s.ctx.Done():
			return
		}
	}
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
	in := s.state.acquireIn(hdr.GetIndex())
	if in == nil {
		s.protocolError(fmt.Errorf("%w: two data streams with index %d", ErrProtocol, hdr.GetIndex()))
		return
	}
	defer s.state.releaseIn(in)
	// Frames the peer resends that this node already delivered (it told
	// the peer a lower position than it reached) are read and dropped.
	var skip uint64
	if got := in.received.Load(); hdr.GetFirstSeq() > got {
		s.protocolError(fmt.Errorf("%w: data stream %d starts at frame %d, this node received %d",
			ErrProtocol, hdr.GetIndex(), hdr.GetFirstSeq(), got))
		return
	} else {
		skip = got - hdr.GetFirstSeq()
	}
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
		if skip > 0 {
			skip--
			if used > 0 {
				br.Discard(used)
			}
			continue
		}
		if err := decodeEnvelopeInterned(frame, &e, &in.ids); err != nil {
			s.protocolError(err)
			return
		}
		if c := s.counters; c != nil {
			c.messagesReceived.Add(1)
			c.bytesReceived.Add(framedSize(len(frame)))
		}
		if err := s.deliver(&e, &in.types, &in.pids); err != nil {
			s.protocolError(err)
			return
		}
		in.received.Add(1)
		if used > 0 {
			br.Discard(used)
		}
		s.activity.Add(1)
		if !s.ackPending.Load() && s.ackPending.CompareAndSwap(false, true) {
			s.ackTimer.Reset(ackDelay)
		}
	}
}

// framedSize is the bytes a frame of n bytes takes on the stream, with
// its length prefix.
func framedSize(n int) uint64 {
	var b [binary.MaxVarintLen64]byte
	return uint64(n + binary.PutUvarint(b[:], uint64(n)))
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
		switch msg.(type) {
		case *caskpb.LinkRequest, *caskpb.LinkRelease, *caskpb.ExitSignal:
			// Link signals (links.go): from an actor of the peer, in
			// order with the messages to target before them.
			if sender == nil || sender.Address != s.peer {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "link signal without a sender of "+s.peer)
				return nil
			}
			s.mgr.links.inbound(target, sender, msg)
			return nil
		}
		proc, _ := s.mgr.system.ProcessRegistry.GetLocal(e.target)
		switch m := msg.(type) {
		case *actor.Watch:
			if m.Watcher == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "watch without watcher")
				return nil
			}
			s.ep.addWatchIn(e.target, m.Watcher)
		case *actor.Unwatch:
			if m.Watcher == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "unwatch without watcher")
				return nil
			}
			s.ep.removeWatchIn(e.target, m.Watcher)
		case *actor.Terminated:
			if m.Who == nil {
				s.refuse(e, t.name, sender, caskpb.FailureReason_FAILURE_REASON_BAD_SYSTEM_MESSAGE, "terminated without who")
				return nil
			}
			s.ep.removeWatchOut(m.Who, e.target)
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

// unmarshalFresh decodes into a message just created: Merge skips the
// Reset that a fresh message does not need.
var unmarshalFresh = proto.UnmarshalOptions{Merge: true}

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
		frame, err := transport.ReadFrame(s.controlReader, buf, 1<<20)
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
				s.protocolError(fmt.Errorf("%w: membership message from %q on the session of %s",
					ErrProtocol, b.Membership.GetFrom(), s.peer))
				return
			}
			if h := s.mgr.membership.Load(); h != nil {
				s.mgr.system.Root.Send(h, &MembershipReceived{From: s.peer, Msg: b.Membership})
			}
		case *caskpb.Control_SessionPin:
			s.remotePinned.Store(b.SessionPin.GetPinned())
		case *caskpb.Control_SpawnRequest:
			s.mgr.system.Root.Send(s.ep.controller(), &spawnRequest{s: s, req: b.SpawnRequest})
		case *caskpb.Control_SpawnResponse:
			s.mgr.system.Root.Send(s.ep.controller(), &spawnResponse{s: s, resp: b.SpawnResponse})
		case *caskpb.Control_StreamCredit:
			s.creditGranted(b.StreamCredit)
		case *caskpb.Control_SessionAck:
			if err := s.acknowledged(b.SessionAck); err != nil {
				s.protocolError(err)
				return
			}
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
	target := &actor.PID{Address: s.peer, Id: df.GetTarget()}
	s.mgr.publishDeadLetter(target, df.GetTypeName(), sender, s.peer, err)
	if df.GetTypeName() == linkRequestType {
		// A peer that does not know links refused the link.
		s.mgr.links.linkFailed(sender, target, err)
	}
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

// acknowledged applies the peer's SessionAck: the frames it names were
// delivered, so the writers forget them, and senders blocked on
// SessionBuffer may go on.
func (s *session) acknowledged(a *caskpb.SessionAck) error {
	st := s.state
	if !st.sequenced {
		return nil
	}
	for _, p := range a.GetPositions() {
		i := int(p.GetIndex())
		if i >= len(st.out) {
			return fmt.Errorf("%w: acknowledgement for data stream %d of %d", ErrProtocol, i, len(st.out))
		}
		if st.ack(i, p.GetReceived()) {
			// Under mu, so a sender between its check and its Wait
			// cannot miss the wake-up.
			w := s.writers[i]
			w.mu.Lock()
			w.mu.Unlock()
			w.drained.Broadcast()
		}
	}
	return nil
}

// ackDelay is how long a session waits after a data frame arrives before
// it acknowledges: frames arriving meanwhile share one SessionAck. The
// ack timer (session.ackTimer) runs ackTick; no goroutine waits for it.
const ackDelay = 5 * time.Millisecond

// ackTick acknowledges what arrived since the timer was armed.
func (s *session) ackTick() {
	s.ackPending.Store(false)
	if s.ctx.Err() != nil {
		return
	}
	s.flushAck()
}

// flushAck sends one SessionAck for every inbound stream whose position
// moved since the last one, if any did.
func (s *session) flushAck() {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	var ps []*caskpb.SessionPosition
	for _, p := range s.state.positions() {
		if s.acked[p.Index] != p.Received {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return
	}
	if s.sendControl(&caskpb.Control{Body: &caskpb.Control_SessionAck{SessionAck: &caskpb.SessionAck{Positions: ps}}}) != nil {
		return
	}
	if s.acked == nil {
		s.acked = make(map[uint32]uint64)
	}
	for _, p := range ps {
		s.acked[p.Index] = p.Received
	}
}
