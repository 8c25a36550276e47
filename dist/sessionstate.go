// The part of a session that outlives its connection: sequence numbers,
// the frames not yet acknowledged, type tables and PID caches per data
// stream, and the ids both sides resume it by.
//
// Every data stream frame has a sequence number implied by its position:
// frames are counted per pool index over the whole session, on whatever
// connection they travel. The sender keeps each frame it wrote (or
// buffered) in its stream's ring until the peer acknowledges it
// (SessionAck, sent by the receiver's ack timer a few milliseconds after
// frames arrive, cumulative per stream); the bytes kept per stream are
// bounded by Config.SessionBuffer, past which senders to that stream block
// (back-pressure). When a
// connection is lost the controller keeps the sessionState for
// Config.SessionGrace; a new connection whose handshake names it resumes
// it: each side tells the other how far it has received, and each writer
// first resends what its peer has not, on a stream whose header says the
// sequence number of its first frame, so the receiver drops what it
// already had. When a session ends, whatever is left in the rings is a
// dead letter on this node (deadLetterUndelivered).
//
// Ownership: the controller creates a sessionState, hands it to each
// connection's session and ends it. An outStream's nextSeq and type table
// are guarded by the mutex of the writer currently using them (one
// connection's writer at a time: a new connection's writers are made only
// after the previous connection's writers are closed); its ring by its own
// mu, shared by the writer goroutine, the control reader (acks) and the
// dead-lettering at the session's end. An inStream belongs to the one
// reader holding it (busy, under inMu); received is atomic for the acker.

package dist

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// sessionState is what a session keeps across connections.
type sessionState struct {
	m    *Manager
	peer string
	// localID and remoteID name the session on each side; a hello that
	// names both resumes it (controller.onInbound, onDialResult).
	localID, remoteID uint64
	peerInc           Incarnation
	// sequenced: the peer acknowledges frames (CAPABILITY_SESSIONS), so
	// writers keep what they send until it is acknowledged and the session
	// can be resumed. Without it frames are forgotten once written, as
	// by builds before sessions.
	sequenced bool
	out       []*outStream // by pool index, Config.DataStreams of them
	// lastConn is the newest connection's session; a resumed connection
	// waits for its goroutines to end before it touches the streams.
	lastConn *session

	inMu sync.Mutex
	in   map[uint32]*inStream // by the peer's pool index
}

// outStream is one outbound data stream's session state.
type outStream struct {
	// Guarded by the mutex of the writer using the stream.
	nextSeq    uint64            // sequence number of the next frame appended
	types      map[string]uint32 // protobuf full name → type id
	lastType   string            // lastType and lastTypeID repeat the previous frame's entry of types
	lastTypeID uint32
	// outstanding counts the bytes of frames appended and not yet
	// acknowledged (Config.SessionBuffer bounds it).
	outstanding atomic.Int64

	mu    sync.Mutex
	acked uint64 // every frame below it was delivered
	// ring holds the frames from headSeq on, back to back, from offset
	// head: written (or about to be) and not known to be delivered. A
	// copy, so the writer reuses its buffers as before sessions. marks
	// are the batch boundaries, for acknowledgements to cut at.
	ring    []byte
	head    int
	headSeq uint64
	marks   []ringMark
}

// ringMark: the frames below end take ring[:off].
type ringMark struct {
	end uint64
	off int
}

// inStream is one inbound data stream's session state.
type inStream struct {
	received atomic.Uint64 // frames delivered (or refused) so far
	busy     bool          // a reader holds it; under sessionState.inMu
	types    []inboundType
	pids     pidCache
	ids      interner
}

// ringCompactAt: an acknowledgement moves the live part of a ring to its
// start once this much before it is dead.
const ringCompactAt = 64 << 10

func newSessionID() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}

func newSessionState(m *Manager, peer string, localID, remoteID uint64, inc Incarnation, caps uint64) *sessionState {
	st := &sessionState{
		m: m, peer: peer, localID: localID, remoteID: remoteID, peerInc: inc,
		sequenced: caps&(1<<caskpb.Capability_CAPABILITY_SESSIONS) != 0 && remoteID != 0 && localID != 0 && !m.withoutSessions,
		in:        make(map[uint32]*inStream),
	}
	st.out = make([]*outStream, m.cfg.DataStreams)
	for i := range st.out {
		st.out[i] = &outStream{}
	}
	return st
}

// unacknowledged is the bytes of frames the peer has not acknowledged,
// over every stream.
func (st *sessionState) unacknowledged() int64 {
	var n int64
	for _, o := range st.out {
		n += o.outstanding.Load()
	}
	return n
}

// positions is how many frames of each inbound stream were received, for
// a handshake. Read while a reader may still count, it is a lower bound,
// which is all resumption needs: the peer resends from there and this
// node drops what it already had.
func (st *sessionState) positions() []*caskpb.SessionPosition {
	st.inMu.Lock()
	defer st.inMu.Unlock()
	ps := make([]*caskpb.SessionPosition, 0, len(st.in))
	for i, in := range st.in {
		ps = append(ps, &caskpb.SessionPosition{Index: i, Received: in.received.Load()})
	}
	return ps
}

// acquireIn gives a reader the inbound state of stream index; nil when
// another reader holds it (the peer opened two streams with one index).
func (st *sessionState) acquireIn(index uint32) *inStream {
	st.inMu.Lock()
	defer st.inMu.Unlock()
	in := st.in[index]
	if in == nil {
		if len(st.in) >= maxInboundStreams {
			return nil
		}
		in = &inStream{}
		st.in[index] = in
	}
	if in.busy {
		return nil
	}
	in.busy = true
	return in
}

func (st *sessionState) releaseIn(in *inStream) {
	st.inMu.Lock()
	in.busy = false
	st.inMu.Unlock()
}

// maxInboundStreams bounds the peer-controlled inbound stream table (the
// pool is at most 1024 streams).
const maxInboundStreams = 1024

// applyPositions acknowledges what the peer says it received, from its
// handshake. It fails when the peer claims frames this node never sent:
// the two sides do not share the session after all.
func (st *sessionState) applyPositions(ps []*caskpb.SessionPosition) error {
	for _, p := range ps {
		if int(p.GetIndex()) >= len(st.out) {
			if p.GetReceived() == 0 {
				continue
			}
			return fmt.Errorf("%w: peer received %d frames on data stream %d, this node has %d streams",
				ErrProtocol, p.GetReceived(), p.GetIndex(), len(st.out))
		}
		o := st.out[p.GetIndex()]
		o.mu.Lock()
		sent := o.nextSeqLocked()
		o.mu.Unlock()
		if p.GetReceived() > sent {
			return fmt.Errorf("%w: peer received %d frames on data stream %d, this node sent %d",
				ErrProtocol, p.GetReceived(), p.GetIndex(), sent)
		}
		st.ack(int(p.GetIndex()), p.GetReceived())
	}
	return nil
}

// nextSeqLocked is the sequence number after the last frame kept; with o.mu
// held and no writer using the stream.
func (o *outStream) nextSeqLocked() uint64 {
	end := max(o.acked, o.nextSeq)
	if n := len(o.marks); n > 0 {
		end = max(end, o.marks[n-1].end)
	}
	return end
}

// ack forgets the frames of stream index below received and reports
// whether senders blocked on SessionBuffer may go on.
func (st *sessionState) ack(index int, received uint64) (unblocked bool) {
	o := st.out[index]
	o.mu.Lock()
	if received <= o.acked {
		o.mu.Unlock()
		return false
	}
	o.acked = received
	n, cut := 0, o.head
	for _, mk := range o.marks {
		if mk.end > received {
			break
		}
		cut, o.headSeq = mk.off, mk.end
		n++
	}
	freed := int64(cut - o.head)
	if n > 0 {
		o.marks = o.marks[:copy(o.marks, o.marks[n:])]
		o.head = cut
		switch {
		case o.head == len(o.ring):
			o.ring, o.head = o.ring[:0], 0
			o.marks = o.marks[:0]
			if cap(o.ring) > 4<<20 {
				o.ring = nil // a burst is over: do not hold its buffer
			}
		case o.head >= ringCompactAt && o.head >= len(o.ring)/2:
			live := copy(o.ring, o.ring[o.head:])
			for i := range o.marks {
				o.marks[i].off -= o.head
			}
			o.ring, o.head = o.ring[:live], 0
		}
	}
	o.mu.Unlock()
	if freed == 0 {
		return false
	}
	limit := int64(st.m.cfg.SessionBuffer)
	after := o.outstanding.Add(-freed)
	return after < limit && after+freed >= limit
}

// keep copies a batch of frames (first..end-1), written or about to be,
// into the ring until the peer acknowledges them.
func (o *outStream) keep(first, end uint64, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if end <= o.acked {
		return
	}
	if len(o.marks) == 0 && o.head == len(o.ring) {
		o.ring, o.head, o.headSeq = o.ring[:0], 0, first
	}
	o.ring = append(o.ring, b...)
	o.marks = append(o.marks, ringMark{end: end, off: len(o.ring)})
}

// liveLocked is the ring's frames from acked on; with o.mu held.
func (o *outStream) liveLocked() []byte {
	b := o.ring[o.head:]
	if o.acked > o.headSeq {
		b = skipFrames(b, int(o.acked-o.headSeq))
	}
	return b
}

// unacked returns a copy of the frames not acknowledged, from the first
// one on: what a new connection's writer sends before anything else.
func (o *outStream) unacked() (first uint64, frames []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.acked, append([]byte(nil), o.liveLocked()...)
}

// skipFrames drops the first n length-prefixed frames of b.
func skipFrames(b []byte, n int) []byte {
	for ; n > 0 && len(b) > 0; n-- {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return nil
		}
		b = b[k+int(l):]
	}
	return b
}

// pendingFrames reports whether the stream has frames the peer has not
// acknowledged (so a resumed connection must resend them).
func (o *outStream) pendingFrames() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.liveLocked()) > 0
}

// takeUndelivered empties every ring and returns the frames that were not
// acknowledged, per stream, with the type names each stream defined.
func (st *sessionState) takeUndelivered() (frames [][]byte, typeNames []map[uint32]string) {
	frames = make([][]byte, len(st.out))
	typeNames = make([]map[uint32]string, len(st.out))
	for i, o := range st.out {
		o.mu.Lock()
		all := append([]byte(nil), o.liveLocked()...)
		o.ring, o.head, o.marks = nil, 0, nil
		o.outstanding.Store(0)
		names := make(map[uint32]string, len(o.types))
		for name, id := range o.types {
			names[id] = name
		}
		o.mu.Unlock()
		frames[i], typeNames[i] = all, names
	}
	return frames, typeNames
}

// deadLetterUndelivered publishes a dead letter for every frame the peer
// did not acknowledge, with err as the reason, and returns how many. The
// session's connections must have ended (their writers put what they held
// in the rings).
func (st *sessionState) deadLetterUndelivered(err error) int {
	frames, typeNames := st.takeUndelivered()
	n := 0
	var e envelope
	for i, b := range frames {
		for len(b) > 0 {
			l, k := binary.Uvarint(b)
			if k <= 0 || l > uint64(len(b)-k) {
				break
			}
			frame := b[k : k+int(l)]
			b = b[k+int(l):]
			if decodeEnvelopeInterned(frame, &e, nil) != nil {
				continue
			}
			n++
			st.deadLetterFrame(&e, typeNames[i][e.typeID], err)
		}
	}
	return n
}

// deadLetterFrame publishes one undelivered frame: the message decoded
// again when its type is known here, else its type name.
func (st *sessionState) deadLetterFrame(e *envelope, typeName string, err error) {
	target := &actor.PID{Address: st.peer, Id: e.target, RequestId: e.targetRequestID}
	var sender *actor.PID
	if e.senderID != "" {
		addr := e.senderAddress
		if addr == "" {
			addr = st.m.name
		}
		sender = &actor.PID{Address: addr, Id: e.senderID, RequestId: e.senderRequestID}
	}
	var msg any = typeName
	if t := newInboundType(typeName); t.mt != nil {
		m := t.newMessage()
		if unmarshalFresh.Unmarshal(e.payload, m) == nil {
			msg = m
		}
	}
	st.m.publishDeadLetter(target, msg, sender, st.peer, err)
}

// ErrSessionEnded is the reason of a message dead-lettered because its
// session ended before the peer acknowledged it: the grace window ran out
// (Config.SessionGrace), the peer restarted, this node disconnected or
// stopped. The error says which, and matches the NodeDown's error when
// there was one.
var ErrSessionEnded = errors.New("dist: session ended")

// sessionEndedError is the reason of messages dead-lettered when a session
// ends.
type sessionEndedError struct {
	reason NodeDownReason
	cause  error
}

func (e *sessionEndedError) Error() string {
	msg := "dist: session ended (" + string(e.reason) + ") before the peer acknowledged the message"
	if e.cause != nil {
		msg += ": " + bare(e.cause.Error())
	}
	return msg
}

func (e *sessionEndedError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrSessionEnded}
	}
	return []error{ErrSessionEnded, e.cause}
}

// SessionStats counts what the sessions with one peer did over the
// Manager's life (Manager.SessionStats).
type SessionStats struct {
	// Sessions counts sessions that came up; Resumptions, connections
	// that resumed a session after its previous connection was lost.
	Sessions, Resumptions uint64
	// DeadLettered counts messages that were sent into a session but
	// dead-lettered when it ended, before the peer acknowledged them
	// (ErrSessionEnded), including those queued while it waited for a
	// new connection.
	DeadLettered uint64
	// Unacknowledged is the bytes of frames the peer has not yet
	// acknowledged in the current session (each data stream's bounded by
	// SessionBuffer).
	Unacknowledged int64
}

// sessionCounters are a peer's SessionStats counters, kept by the Manager
// for its life.
type sessionCounters struct {
	sessions, resumptions, deadLettered atomic.Uint64
	live                                atomic.Pointer[sessionState]
}

func (m *Manager) sessionCounters(node string) *sessionCounters {
	if v, ok := m.sessionStats.Load(node); ok {
		return v.(*sessionCounters)
	}
	v, _ := m.sessionStats.LoadOrStore(node, &sessionCounters{})
	return v.(*sessionCounters)
}

// SessionStats returns the session counters of node (zero for a node this
// Manager never had a session with).
func (m *Manager) SessionStats(node string) SessionStats {
	v, ok := m.sessionStats.Load(node)
	if !ok {
		return SessionStats{}
	}
	c := v.(*sessionCounters)
	s := SessionStats{Sessions: c.sessions.Load(), Resumptions: c.resumptions.Load(), DeadLettered: c.deadLettered.Load()}
	if st := c.live.Load(); st != nil {
		s.Unacknowledged = st.unacknowledged()
	}
	return s
}
