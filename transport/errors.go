package transport

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/quic-go/quic-go"
)

// Sentinel errors. Every error returned by this package that concerns a
// connection or a stream matches at most one of the connection-level
// sentinels (ErrClosed, ErrIdleTimeout, ErrPeerClosed, ErrHandshake) with
// errors.Is; quic-go's own error types never cross this boundary.
var (
	// ErrClosed means the transport, the connection or the stream was closed
	// on this side (by Close, CloseWithError, or a local protocol error).
	ErrClosed = errors.New("transport: closed")
	// ErrIdleTimeout means the peer was silent for longer than
	// Config.IdleTimeout, or the handshake (QUIC + Authenticator) did not
	// finish within Config.HandshakeTimeout.
	ErrIdleTimeout = errors.New("transport: idle timeout")
	// ErrPeerClosed means the peer closed the connection. The error is a
	// *CloseError carrying the peer's code and reason.
	ErrPeerClosed = errors.New("transport: closed by peer")
	// ErrStreamReset means a stream was reset (write side) or stopped (read
	// side). The error is a *StreamError carrying the code and the side that
	// cancelled it.
	ErrStreamReset = errors.New("transport: stream reset")
	// ErrHandshake means the QUIC/TLS handshake failed (for example a wrong
	// ALPN or a version mismatch).
	ErrHandshake = errors.New("transport: handshake failed")
	// ErrTooManyHandshakes means the acceptor already had
	// Config.MaxPendingHandshakes connections in admission and refused this
	// one, or evicted it to make room for a newer one (code
	// CodeTooManyHandshakes).
	ErrTooManyHandshakes = errors.New("transport: too many pending handshakes")
	// ErrNotStarted is returned by Dial and Accept before Start.
	ErrNotStarted = errors.New("transport: not started")

	// ErrMigrationTimeout means the new path did not validate
	// (PATH_CHALLENGE/PATH_RESPONSE) before the context passed to
	// Conn.Migrate was done. The old path keeps working.
	ErrMigrationTimeout = errors.New("transport: migration timed out")
	// ErrMigrationNotAllowed means this side may not migrate the connection:
	// only the dialer can (QUIC, RFC 9000 §9), and not when this node's
	// Config.DisableMigration is set.
	ErrMigrationNotAllowed = errors.New("transport: migration not allowed on this side")
	// ErrPeerDisableMigration means the peer forbade active migration. It is
	// terminal for the connection: later attempts fail the same way.
	ErrPeerDisableMigration = errors.New("transport: peer disabled migration")
)

// ErrorCode is an application error code sent with CONNECTION_CLOSE (and
// used for stream resets). The values are part of the wire protocol:
// append only.
type ErrorCode uint64

const (
	// CodeNone: orderly close, nothing went wrong.
	CodeNone ErrorCode = 0
	// CodeShutdown: the node (or its transport) is shutting down.
	CodeShutdown ErrorCode = 1
	// CodeProtocolViolation: the peer sent something the Cask protocol does
	// not allow (for example a malformed frame).
	CodeProtocolViolation ErrorCode = 2
	// CodeHandshakeFailed: the connection was refused before it was handed to
	// the application (wrong ALPN, handshake timeout).
	CodeHandshakeFailed ErrorCode = 3
	// CodeDuplicate: a connection to the same peer already exists and this
	// one loses the tie-break.
	CodeDuplicate ErrorCode = 4
	// CodeIdle: the connection was unused and reaped.
	CodeIdle ErrorCode = 5
	// CodeAuthFailed: the Authenticator rejected the peer.
	CodeAuthFailed ErrorCode = 6
	// CodeInternal: a bug or unexpected local failure.
	CodeInternal ErrorCode = 7
	// CodeTooManyHandshakes: the acceptor had Config.MaxPendingHandshakes
	// connections pending and refused or evicted this one; the dialer sees
	// ErrTooManyHandshakes.
	CodeTooManyHandshakes ErrorCode = 8
)

// String returns the code's name.
func (c ErrorCode) String() string {
	switch c {
	case CodeNone:
		return "none"
	case CodeShutdown:
		return "shutdown"
	case CodeProtocolViolation:
		return "protocol_violation"
	case CodeHandshakeFailed:
		return "handshake_failed"
	case CodeDuplicate:
		return "duplicate"
	case CodeIdle:
		return "idle"
	case CodeAuthFailed:
		return "auth_failed"
	case CodeInternal:
		return "internal"
	case CodeTooManyHandshakes:
		return "too_many_handshakes"
	}
	return fmt.Sprintf("code_%d", uint64(c))
}

// CloseError reports a connection closed with an application error code.
// Remote says the peer closed it: then it matches ErrPeerClosed, otherwise
// ErrClosed. A CodeTooManyHandshakes close also matches ErrTooManyHandshakes.
type CloseError struct {
	Code   ErrorCode
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	if e.Reason == "" {
		return fmt.Sprintf("transport: connection closed %s (%s)", who, e.Code)
	}
	return fmt.Sprintf("transport: connection closed %s (%s): %s", who, e.Code, e.Reason)
}

// Is makes errors.Is(err, ErrPeerClosed) (or ErrClosed) work.
func (e *CloseError) Is(target error) bool {
	switch target {
	case ErrPeerClosed:
		return e.Remote
	case ErrClosed:
		return !e.Remote
	case ErrTooManyHandshakes:
		return e.Code == CodeTooManyHandshakes
	}
	return false
}

// StreamError reports a stream reset (or stopped) with an application error
// code. Remote says the peer cancelled it. It always matches ErrStreamReset.
type StreamError struct {
	Code   ErrorCode
	Remote bool
}

func (e *StreamError) Error() string {
	who := "locally"
	if e.Remote {
		who = "by peer"
	}
	return fmt.Sprintf("transport: stream reset %s (%s)", who, e.Code)
}

// Is makes errors.Is(err, ErrStreamReset) work.
func (e *StreamError) Is(target error) bool { return target == ErrStreamReset }

// deadlineError is returned by stream operations whose deadline passed. It is
// a net.Error with Timeout() true and matches os.ErrDeadlineExceeded.
type deadlineError struct{}

func (deadlineError) Error() string   { return "transport: deadline exceeded" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }
func (deadlineError) Unwrap() error   { return os.ErrDeadlineExceeded }

var errDeadline net.Error = deadlineError{}

// isOwnError reports whether err was already converted by this package.
func isOwnError(err error) bool {
	for _, s := range []error{ErrClosed, ErrIdleTimeout, ErrPeerClosed, ErrStreamReset, ErrHandshake, ErrTooManyHandshakes, ErrMigrationTimeout, ErrMigrationNotAllowed, ErrPeerDisableMigration, ErrNotStarted} {
		if errors.Is(err, s) {
			return true
		}
	}
	var d deadlineError
	return errors.As(err, &d)
}

// convertErr maps quic-go errors to this package's errors. Errors that are
// not quic-go's (io.EOF, context errors, our own) pass through unchanged.
// The original quic-go error is kept only as text, so callers never see
// quic-go types.
func convertErr(err error) error {
	if err == nil || isOwnError(err) {
		return err
	}
	var (
		streamErr *quic.StreamError
		appErr    *quic.ApplicationError
		idleErr   *quic.IdleTimeoutError
		hsErr     *quic.HandshakeTimeoutError
		resetErr  *quic.StatelessResetError
		vnErr     *quic.VersionNegotiationError
		tErr      *quic.TransportError
	)
	switch {
	case errors.As(err, &streamErr):
		return &StreamError{Code: ErrorCode(streamErr.ErrorCode), Remote: streamErr.Remote}
	case errors.As(err, &appErr):
		return &CloseError{Code: ErrorCode(appErr.ErrorCode), Reason: appErr.ErrorMessage, Remote: appErr.Remote}
	case errors.As(err, &idleErr):
		return fmt.Errorf("%w: no packet from peer within the idle timeout", ErrIdleTimeout)
	case errors.As(err, &hsErr):
		return fmt.Errorf("%w: QUIC handshake did not complete in time", ErrIdleTimeout)
	case errors.As(err, &resetErr):
		return &CloseError{Code: CodeNone, Reason: "stateless reset (peer lost the connection state)", Remote: true}
	case errors.As(err, &vnErr):
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	case errors.As(err, &tErr):
		if tErr.ErrorCode.IsCryptoError() {
			return fmt.Errorf("%w: %v", ErrHandshake, err)
		}
		if tErr.Remote {
			return fmt.Errorf("%w: %v", ErrPeerClosed, err)
		}
		return fmt.Errorf("%w: %v", ErrClosed, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errDeadline
	case errors.Is(err, quic.ErrTransportClosed), errors.Is(err, quic.ErrServerClosed),
		errors.Is(err, quic.ErrStreamClosed), errors.Is(err, quic.ErrPathClosed),
		errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return err
}
