package dist

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cask-p2p/cask/transport/identity"
)

// Sentinel errors. Match them with errors.Is; the errors a caller sees are
// wrapped with the peer and the operation.
var (
	// ErrNotConnected: there is no session to that node.
	ErrNotConnected = errors.New("dist: not connected")
	// ErrNoConn: the node's controller is alive but its QUIC connection is
	// gone (closing, or lost and not yet reported).
	ErrNoConn = errors.New("dist: no connection")
	// ErrUnknownNode: discovery found no address for the node name.
	ErrUnknownNode = errors.New("dist: unknown node")
	// ErrBadNodeName: a string is not a valid node name (see
	// ValidateNodeName). It is identity.ErrBadNodeName.
	ErrBadNodeName = identity.ErrBadNodeName
	// ErrConnectFailed: dialing the node or its dist handshake failed.
	ErrConnectFailed = errors.New("dist: connect failed")
	// ErrUnreachable: the last connect attempt to the node failed and
	// its reconnect backoff has not run out, so the message was not sent
	// and no connect was tried for it. The error also matches the failed
	// attempt's cause (ErrUnknownNode, ErrConnectFailed, an identity
	// error, ...). See Config.ReconnectBackoffMin.
	ErrUnreachable = errors.New("dist: peer unreachable")
	// ErrQueueFull: too many messages are waiting for a session to open.
	ErrQueueFull = errors.New("dist: send queue full")
	// ErrNotProtobuf: only protobuf messages cross nodes.
	ErrNotProtobuf = errors.New("dist: message is not a protobuf message")
	// ErrEncode: the message did not encode (for example a proto2 required
	// field is unset, or the message was modified while it was being
	// sent).
	ErrEncode = errors.New("dist: message does not encode")
	// ErrMessageTooLarge: the encoded message is over Config.MaxMessageSize.
	ErrMessageTooLarge = errors.New("dist: message too large")
	// ErrUnknownType: the receiving node has no Go type registered for the
	// message's protobuf name.
	ErrUnknownType = errors.New("dist: unknown message type")
	// ErrDecode: the receiving node could not decode the message payload.
	ErrDecode = errors.New("dist: message does not decode")
	// ErrUnsupportedSystemMessage: a system message other than Watch,
	// Unwatch, Terminated or Stop was sent to a remote PID.
	ErrUnsupportedSystemMessage = errors.New("dist: unsupported system message")
	// ErrConnectionLost: the session closed before the message was written.
	ErrConnectionLost = errors.New("dist: connection lost")
	// ErrStopped: the dist layer is stopped.
	ErrStopped = errors.New("dist: stopped")
	// ErrUnknownKind: SpawnRemote named a kind the peer has not registered.
	ErrUnknownKind = errors.New("dist: unknown kind")
	// ErrNameTaken: SpawnRemote asked for a name already in use on the peer.
	ErrNameTaken = errors.New("dist: actor name taken")
	// ErrSpawnFailed: the peer could not spawn the actor.
	ErrSpawnFailed = errors.New("dist: remote spawn failed")
	// ErrSelf: the operation names this node itself.
	ErrSelf = errors.New("dist: node is this node")
	// ErrProtocol: the peer broke the wire protocol; its connection is closed.
	ErrProtocol = errors.New("dist: protocol violation")
	// ErrRejected: the peer refused the dist handshake.
	ErrRejected = errors.New("dist: handshake rejected")
	// ErrTooManyPeers: the node already has Config.MaxPeers sessions (or
	// connect attempts), so a connect to a new peer fails with it, and a
	// peer refused for it sees it too (with ErrRejected).
	ErrTooManyPeers = errors.New("dist: too many peers")
	// ErrNotLocal: an operation needs a PID of this node (Link and Unlink
	// need at least one; SpawnLink and SpawnMonitor name one).
	ErrNotLocal = errors.New("dist: PID is not on this node")
	// ErrSpawnNotAllowed: the kind's allow-list (AllowSpawnBy) does not
	// name the node that asked to spawn it.
	ErrSpawnNotAllowed = errors.New("dist: spawn not allowed")
)

// PeerError wraps an error with the peer and the operation that failed.
type PeerError struct {
	Op   string
	Node string
	Err  error
}

// Error reads "dist: op node: what happened", with no package prefix
// repeated inside.
func (e *PeerError) Error() string {
	return "dist: " + e.Op + " " + e.Node + ": " + bare(e.Err.Error())
}

func (e *PeerError) Unwrap() error { return e.Err }

func peerErr(op, node string, err error) error {
	if err == nil {
		return nil
	}
	return &PeerError{Op: op, Node: node, Err: err}
}

// unreachableError is the Reason of a send that failed fast because its
// peer is known unreachable: it matches ErrUnreachable and the last
// connect error. One is made per failed attempt and shared by every send
// it refuses.
type unreachableError struct {
	connectErr error         // the failed attempt's error (a *PeerError)
	retryIn    time.Duration // the backoff delay drawn after it
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("dist: peer unreachable (next connect attempt within %v): %s",
		e.retryIn.Round(time.Millisecond), bare(e.connectErr.Error()))
}

func (e *unreachableError) Unwrap() []error { return []error{ErrUnreachable, e.connectErr} }

// translate turns cause, an error of a layer below that matched that
// layer's sentinel lower, into this package's sentinel: the result matches
// sentinel, lower and cause with errors.Is, and its message says each
// thing once: sentinel's words, then whatever cause adds to lower
// ("migration timed out: path from 127.0.0.1:4000 not validated"), then
// extra, if any. Errors are translated once, where they cross into dist.
func translate(sentinel, cause, lower error, extra string) error {
	return &translated{sentinel: sentinel, cause: cause, lower: lower, extra: extra}
}

type translated struct {
	sentinel, cause, lower error
	extra                  string
}

func (e *translated) Error() string {
	msg := bare(e.sentinel.Error())
	detail := bare(e.cause.Error())
	if e.lower != nil {
		lw := bare(e.lower.Error())
		switch {
		case detail == lw:
			detail = ""
		case strings.HasPrefix(detail, lw+": "):
			detail = detail[len(lw)+2:]
		}
	}
	if detail != "" && detail != msg {
		msg += ": " + detail
	}
	if e.extra != "" {
		msg += " " + e.extra
	}
	return msg
}

func (e *translated) Unwrap() []error { return []error{e.sentinel, e.cause} }

// bare strips the package prefix from an error message of this module
// ("transport: idle timeout" → "idle timeout"), for messages that already
// say which package speaks.
func bare(msg string) string {
	for _, p := range [...]string{"dist: ", "transport: ", "identity: "} {
		if strings.HasPrefix(msg, p) {
			return msg[len(p):]
		}
	}
	return msg
}
