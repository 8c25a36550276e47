// The outbound path, second stop: framing and stream writers.
//
// session.sendMessage (or send, for a message encoded while no session was
// up) picks the data stream from the target's id, so every message to one
// actor rides one QUIC stream in order; it locks that stream's writer,
// appends one frame (envelope head, payload encoded in place, envelope
// tail, see wire.go) and signals the writer goroutine, which writes
// everything buffered since its last write in one call. Control frames
// (sendControl) go through the session's control writer the same way.
//
// Ownership: a streamWriter's buffer, type table and flags are guarded by
// its mu, which senders hold for one frame at a time; only its goroutine
// (run) owns the QUIC stream. Senders block in lock while more than
// WriteBufferLimit bytes wait (back-pressure).

package dist

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"google.golang.org/protobuf/proto"
)

// send appends one encoded message to the data stream chosen by the
// target. It returns errSessionClosing when the session no longer takes
// sends; the caller then queues the message for the next session.
func (s *session) send(o *queuedMessage) error {
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

// tooLarge is the ErrMessageTooLarge for a message of size bytes over
// limit; peer names the node whose limit it is, "" for this node's.
//
//go:noinline
func tooLarge(typeName string, size, limit int, peer string) error {
	if peer == "" {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrMessageTooLarge, typeName, size, limit)
	}
	return fmt.Errorf("%w: %s is %d bytes, %s accepts at most %d", ErrMessageTooLarge, typeName, size, peer, limit)
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
	o := w.st
	id, known := o.lastTypeID, o.lastType == typeName && typeName != ""
	if !known {
		id, known = o.types[typeName]
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
	o := w.st
	o.lastType, o.lastTypeID = f.typeName, f.typeID
	o.nextSeq++
	w.bufFrames++
	if w.sequenced {
		o.outstanding.Add(int64(len(w.buf) - f.start))
	}
	if c := w.s.counters; c != nil {
		c.messagesSent.Add(1)
		c.bytesSent.Add(uint64(len(w.buf) - f.start))
	}
	w.unlockAndSignal()
}

// abortFrame removes a begun frame (and the type id it defined) and
// unlocks the writer.
func (w *streamWriter) abortFrame(f frameStart) {
	w.buf = w.buf[:f.start]
	if f.defined {
		delete(w.st.types, f.typeName)
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
	w := s.controlWriter
	if !w.lock() {
		return errSessionClosing
	}
	w.buf = transport.AppendFrame(w.buf, b)
	w.unlockAndSignal()
	return nil
}

// streamWriter owns one outgoing stream of one connection. Senders append
// whole frames to buf under mu; the writer goroutine swaps buf out and
// writes the batch with one Write, so many small messages share one
// stream write (coalescing). The goroutine and the QUIC stream start on
// first use. A data stream's sequence numbers, type table and
// unacknowledged frames are the session's (st, sessionstate.go): a
// writer of a resumed connection first resends what the peer has not
// acknowledged, and a writer whose connection ends leaves what it had not
// written in st's ring.
type streamWriter struct {
	s     *session
	index int
	st    *outStream
	// sequenced: frames are kept in st's ring until acknowledged.
	sequenced bool
	open      func(firstSeq uint64) (io.WriteCloser, error)

	mu      sync.Mutex
	drained sync.Cond // signalled when buf is swapped out or the writer closes
	buf     []byte
	// bufSeq is the sequence number of buf's first frame; bufFrames
	// counts the frames in buf.
	bufSeq    uint64
	bufFrames uint64
	started   bool
	closing   bool // no more frames accepted; flush then finish the stream
	done      bool // the goroutine returned
	signal    chan struct{}
	// finished is closed when the goroutine returns.
	finished chan struct{}
	// opened reports whether the stream was ever opened.
	opened bool
}

func newStreamWriter(s *session, index int, st *outStream, sequenced bool, open func(uint64) (io.WriteCloser, error)) *streamWriter {
	w := &streamWriter{s: s, index: index, st: st, sequenced: sequenced, open: open, bufSeq: st.nextSeq,
		signal: make(chan struct{}, 1), finished: make(chan struct{})}
	w.drained.L = &w.mu
	return w
}

// lock takes mu and waits while the buffer is over WriteBufferLimit or
// the stream holds SessionBuffer bytes unacknowledged (back-pressure). It
// returns false, unlocked, if the writer is closing.
func (w *streamWriter) lock() bool {
	w.mu.Lock()
	for !w.closing && (len(w.buf) >= w.s.mgr.cfg.WriteBufferLimit ||
		w.sequenced && w.st.outstanding.Load() >= int64(w.s.mgr.cfg.SessionBuffer)) {
		w.drained.Wait()
	}
	if w.closing {
		w.mu.Unlock()
		return false
	}
	if !w.started {
		w.started = true
		w.s.wg.Add(1)
		go w.run()
	}
	return true
}

// start starts the writer goroutine, without waiting for buffer space
// (the controller starts the writers that must resend).
func (w *streamWriter) start() {
	w.mu.Lock()
	if !w.closing && !w.started {
		w.started = true
		w.s.wg.Add(1)
		go w.run()
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// defineType gives typeName the next type id on this stream. Called with
// mu held; the frame that uses the id carries the name.
func (w *streamWriter) defineType(typeName string) uint32 {
	o := w.st
	if o.types == nil {
		o.types = make(map[string]uint32)
	}
	id := uint32(len(o.types))
	o.types[typeName] = id
	return id
}

// unlockAndSignal releases mu and wakes the goroutine.
func (w *streamWriter) unlockAndSignal() {
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// close stops accepting frames; what is buffered is still written and the
// stream is finished. It returns a channel closed when that is done.
func (w *streamWriter) close() <-chan struct{} {
	w.mu.Lock()
	w.closing = true
	started := w.started
	if !started {
		w.started = true
		close(w.finished)
	}
	w.mu.Unlock()
	w.drained.Broadcast()
	select {
	case w.signal <- struct{}{}:
	default:
	}
	return w.finished
}

func (w *streamWriter) run() {
	defer w.s.wg.Done()
	defer close(w.finished)
	defer func() {
		w.mu.Lock()
		w.closing, w.done = true, true
		if w.sequenced && w.bufFrames > 0 {
			// Not written: kept for the next connection, or a dead
			// letter when the session ends.
			w.st.keep(w.bufSeq, w.bufSeq+w.bufFrames, w.buf)
		}
		w.buf, w.bufFrames = nil, 0
		w.mu.Unlock()
		w.drained.Broadcast()
	}()
	if prev := w.s.prev; prev != nil {
		// The previous connection's writer of this stream may still put
		// what it held in the ring.
		select {
		case <-prev.done:
		case <-w.s.ctx.Done():
			return
		}
	}
	var stream io.WriteCloser
	openStream := func(firstSeq uint64) bool {
		if stream != nil {
			return true
		}
		var err error
		if stream, err = w.open(firstSeq); err != nil {
			w.s.fail(err)
			return false
		}
		w.mu.Lock()
		w.opened = true
		w.mu.Unlock()
		return true
	}
	if w.sequenced && w.st.pendingFrames() {
		// A resumed session: first what the peer has not acknowledged.
		first, frames := w.st.unacked()
		if !openStream(first) {
			return
		}
		if _, err := stream.Write(frames); err != nil {
			w.s.fail(err)
			return
		}
	}
	var out []byte
	for {
		select {
		case <-w.signal:
		case <-w.s.ctx.Done():
			return
		}
		w.mu.Lock()
		out, w.buf = w.buf, out[:0]
		first, frames := w.bufSeq, w.bufFrames
		w.bufSeq, w.bufFrames = first+frames, 0
		closing := w.closing && len(w.buf) == 0
		w.mu.Unlock()
		w.drained.Broadcast()
		if len(out) > 0 {
			if w.sequenced {
				// Kept (copied) before it is written: an
				// acknowledgement may arrive as soon as it is.
				w.st.keep(first, first+frames, out)
			}
			if !openStream(first) {
				return
			}
			if _, err := stream.Write(out); err != nil {
				w.s.fail(err)
				return
			}
			w.s.activity.Add(1)
		}
		if closing {
			if stream != nil {
				stream.Close()
			}
			return
		}
	}
}

func (s *session) openData(index int, firstSeq uint64) (io.WriteCloser, error) {
	st, err := s.conn.OpenUniStream(s.ctx)
	if err != nil {
		return nil, err
	}
	hdr, _ := proto.Marshal(&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_DATA, Index: uint32(index), FirstSeq: firstSeq})
	if _, err := st.Write(transport.AppendFrame(nil, hdr)); err != nil {
		return nil, err
	}
	return st, nil
}
