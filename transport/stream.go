package transport

import (
	"context"
	"time"

	"github.com/quic-go/quic-go"
)

// Stream is a bidirectional stream. Read, Write and Close may be called from
// different goroutines (one reader, one writer). Errors are this package's
// (see ErrStreamReset, ErrPeerClosed, ...); io.EOF marks the peer's end of
// data.
type Stream struct {
	s *quic.Stream
}

// Read reads data sent by the peer.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, convertErr(err)
}

// Write writes data to the peer, blocking for flow-control credit.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	return n, convertErr(err)
}

// Close closes the write side (sends FIN). The read side stays open: read
// until io.EOF or call CancelRead.
func (s *Stream) Close() error { return convertErr(s.s.Close()) }

// CloseWrite is Close under the name net.TCPConn uses.
func (s *Stream) CloseWrite() error { return s.Close() }

// CancelRead stops receiving: the peer's writes fail with a *StreamError
// carrying code.
func (s *Stream) CancelRead(code ErrorCode) { s.s.CancelRead(quic.StreamErrorCode(code)) }

// CancelWrite resets the write side: unsent data is discarded and the
// peer's reads fail with a *StreamError carrying code.
func (s *Stream) CancelWrite(code ErrorCode) { s.s.CancelWrite(quic.StreamErrorCode(code)) }

// SetDeadline sets both deadlines.
func (s *Stream) SetDeadline(t time.Time) error { return s.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline; an expired read returns an error
// matching os.ErrDeadlineExceeded.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (s *Stream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// StreamID returns the QUIC stream ID.
func (s *Stream) StreamID() int64 { return int64(s.s.StreamID()) }

// WriteContext is done once the write side is finished: by Close or
// CancelWrite, when the peer stops reading (CancelRead on its side), or
// when the connection closes.
func (s *Stream) WriteContext() context.Context { return s.s.Context() }

// SendStream is the sending half of a unidirectional stream.
type SendStream struct {
	s *quic.SendStream
}

// Write writes data to the peer, blocking for flow-control credit.
func (s *SendStream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	return n, convertErr(err)
}

// Close ends the stream (sends FIN).
func (s *SendStream) Close() error { return convertErr(s.s.Close()) }

// CancelWrite resets the stream with code.
func (s *SendStream) CancelWrite(code ErrorCode) { s.s.CancelWrite(quic.StreamErrorCode(code)) }

// SetWriteDeadline sets the write deadline.
func (s *SendStream) SetWriteDeadline(t time.Time) error { return s.s.SetWriteDeadline(t) }

// StreamID returns the QUIC stream ID.
func (s *SendStream) StreamID() int64 { return int64(s.s.StreamID()) }

// ReceiveStream is the receiving half of a unidirectional stream.
type ReceiveStream struct {
	s *quic.ReceiveStream
}

// Read reads data sent by the peer; io.EOF at its end.
func (s *ReceiveStream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, convertErr(err)
}

// CancelRead stops receiving; the peer's writes fail with a *StreamError.
func (s *ReceiveStream) CancelRead(code ErrorCode) { s.s.CancelRead(quic.StreamErrorCode(code)) }

// SetReadDeadline sets the read deadline.
func (s *ReceiveStream) SetReadDeadline(t time.Time) error { return s.s.SetReadDeadline(t) }

// StreamID returns the QUIC stream ID.
func (s *ReceiveStream) StreamID() int64 { return int64(s.s.StreamID()) }
