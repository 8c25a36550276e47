package dist

import (
	"errors"
	"fmt"

	"github.com/cask-p2p/cask/transport/identity"
)

// Sentinel errors. Match them with errors.Is; the errors a caller sees are
// wrapped with the peer and the operation.
var (
	// ErrNotConnected: there is no channel to that node.
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
	// ErrQueueFull: too many messages are waiting for a channel to open.
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
	// ErrConnectionLost: the channel closed before the message was written.
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
)

// PeerError wraps an error with the peer and the operation that failed.
type PeerError struct {
	Op   string
	Node string
	Err  error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("dist: %s %s: %v", e.Op, e.Node, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

func peerErr(op, node string, err error) error {
	if err == nil {
		return nil
	}
	return &PeerError{Op: op, Node: node, Err: err}
}
