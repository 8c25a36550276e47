package dist

import (
	"io"
	"sync"
)

// streamWriter owns one outgoing stream. Senders append whole frames to
// buf under mu; the writer goroutine swaps buf out and writes the batch
// with one Write, so many small messages share one stream write
// (coalescing). The goroutine and the QUIC stream start on first use.
type streamWriter struct {
	s     *session
	index int
	open  func() (io.WriteCloser, error)

	mu      sync.Mutex
	drained sync.Cond // signalled when buf is swapped out or the writer closes
	buf     []byte
	types   map[string]uint32 // protobuf full name → type id on this stream
	// lastType and lastTypeID repeat the previous frame's entry of types.
	lastType   string
	lastTypeID uint32
	started    bool
	closing    bool // no more frames accepted; flush then finish the stream
	done       bool // the goroutine returned
	signal     chan struct{}
	// finished is closed when the goroutine returns.
	finished chan struct{}
	// opened reports whether the stream was ever opened.
	opened bool
}

func newStreamWriter(s *session, index int, open func() (io.WriteCloser, error)) *streamWriter {
	w := &streamWriter{s: s, index: index, open: open, signal: make(chan struct{}, 1), finished: make(chan struct{})}
	w.drained.L = &w.mu
	return w
}

// lock takes mu and waits while the buffer is over the limit
// (back-pressure). It returns false, unlocked, if the writer is closing.
func (w *streamWriter) lock() bool {
	w.mu.Lock()
	for !w.closing && len(w.buf) >= w.s.mgr.cfg.WriteBufferLimit {
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

// defineType gives typeName the next type id on this stream. Called with
// mu held; the frame that uses the id carries the name.
func (w *streamWriter) defineType(typeName string) uint32 {
	if w.types == nil {
		w.types = make(map[string]uint32)
	}
	id := uint32(len(w.types))
	w.types[typeName] = id
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
		w.buf = nil
		w.mu.Unlock()
		w.drained.Broadcast()
	}()
	var stream io.WriteCloser
	var out []byte
	for {
		select {
		case <-w.signal:
		case <-w.s.ctx.Done():
			return
		}
		w.mu.Lock()
		out, w.buf = w.buf, out[:0]
		closing := w.closing && len(w.buf) == 0
		w.mu.Unlock()
		w.drained.Broadcast()
		if len(out) > 0 {
			if stream == nil {
				var err error
				if stream, err = w.open(); err != nil {
					w.s.fail(err)
					return
				}
				w.mu.Lock()
				w.opened = true
				w.mu.Unlock()
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
