package dist

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// NodeDownReason says why a session to a node went down.
type NodeDownReason string

// Reasons carried by NodeDown.
const (
	// ReasonConnectionLost: the QUIC connection failed (idle timeout,
	// reset, path gone).
	ReasonConnectionLost NodeDownReason = "connection_lost"
	// ReasonPeerShutdown: the peer said goodbye because it is stopping.
	ReasonPeerShutdown NodeDownReason = "peer_shutdown"
	// ReasonIdle: the session was idle and reaped by either side.
	ReasonIdle NodeDownReason = "idle"
	// ReasonRestarted: the peer came back as a new incarnation.
	ReasonRestarted NodeDownReason = "restarted"
	// ReasonConnectFailed: a connect attempt failed (no session came up).
	ReasonConnectFailed NodeDownReason = "connect_failed"
	// ReasonProtocolError: the peer broke the wire protocol.
	ReasonProtocolError NodeDownReason = "protocol_error"
	// ReasonShutdown: this node is stopping.
	ReasonShutdown NodeDownReason = "shutdown"
	// ReasonControllerCrashed: the controller actor for the peer failed.
	ReasonControllerCrashed NodeDownReason = "controller_crashed"
	// ReasonDisconnected: this node closed the session on purpose
	// (Disconnect, Manager.Disconnect).
	ReasonDisconnected NodeDownReason = "disconnected"
)

// NodeUp is sent to node monitors when a session to Node comes up.
type NodeUp struct {
	Node        string
	Incarnation Incarnation
}

// NodeDown is sent to node monitors when the session to Node goes down,
// and when a connect attempt fails.
type NodeDown struct {
	Node   string
	Reason NodeDownReason
	// Err is the underlying error, if any.
	Err error
}

// NodeUnreachable is sent to node monitors when the connection to Node is
// lost while its session lives on (Config.SessionGrace): messages to Node
// wait, and both sides reconnect. NodeReachable follows when a new
// connection resumes the session, NodeDown when the session ends. Err
// says why the connection was lost.
type NodeUnreachable struct {
	Node string
	Err  error
}

// NodeReachable is sent to node monitors when a new connection resumed the
// session with Node after NodeUnreachable: nothing sent meanwhile was lost.
type NodeReachable struct {
	Node string
}

// MonitorNode asks the dist manager to send NodeUp, NodeUnreachable,
// NodeReachable and NodeDown for Node to Watcher, in the order they
// happened. An empty Node means every node. If a session to Node is up when
// the monitor is registered, NodeUp is sent at once, then NodeUnreachable
// if its connection is lost right then. That state is the one the events
// published so far describe, so each event reaches a monitor once.
type MonitorNode struct {
	Node    string
	Watcher *actor.PID
}

// DemonitorNode removes a monitor registered with MonitorNode.
type DemonitorNode struct {
	Node    string
	Watcher *actor.PID
}

// Connect asks the dist manager to open a session to Node. The sender gets
// *ConnectResult when the session is up or the attempt failed.
type Connect struct {
	Node string
}

// ConnectResult answers Connect.
type ConnectResult struct {
	Node string
	Err  error
}

// Disconnect asks the dist manager to close the session to Node on purpose,
// as Erlang's disconnect_node: monitors get NodeDown{disconnected},
// watches across it end with Terminated(AddressTerminated), and the peer
// sees the session end (NodeDown{peer_shutdown}). It also forgets that
// Node was unreachable (its reconnect backoff). Nothing reconnects by
// itself; the next send, Connect or Spawn opens a new session. The
// sender gets *DisconnectResult: Err is nil when a session was closed,
// ErrNotConnected (wrapped) when there was none.
type Disconnect struct {
	Node string
}

// DisconnectResult answers Disconnect.
type DisconnectResult struct {
	Node string
	Err  error
}

// Spawn asks the dist manager to spawn an actor of a registered Kind on
// Node, named Name (empty: a generated name). The sender gets
// *SpawnResult.
type Spawn struct {
	Node string
	Kind string
	Name string
	// Link, an actor of this node, is linked with the new actor before
	// the new actor handles its first message (SpawnLink).
	Link *actor.PID
	// Monitor, an actor of this node, watches the new actor from before
	// it handles its first message (SpawnMonitor).
	Monitor *actor.PID
}

// SpawnResult answers Spawn.
type SpawnResult struct {
	PID *actor.PID
	Err error
}

// UndeliveredMessage is the Message of the actor.DeadLetterEvent the dist
// layer publishes for a message it could not deliver: the original message
// and why.
type UndeliveredMessage struct {
	// Message is the message as sent (for a message refused by the
	// receiver, its protobuf type name).
	Message any
	// Node is the peer the message was for.
	Node   string
	Reason error
}

// Pin and Unpin keep a session open against idle reaping (reference
// counted). Membership pins its active view; user streams pin their
// connection.
type Pin struct{ Node string }

// Unpin releases one Pin.
type Unpin struct{ Node string }

// SendMembership asks the dist manager to send a membership message to
// Node on the control stream, opening the session if needed. Messages
// waiting for a session that fails to open are dropped; the membership
// layer learns of the failure from NodeDown{connect_failed}.
type SendMembership struct {
	Node string
	Msg  *caskpb.Membership
}

// MembershipReceived is delivered to the PID set with
// Manager.SetMembershipHandler for each membership message a peer sends.
// From is the session's peer, already checked against Msg.From.
type MembershipReceived struct {
	From string
	Msg  *caskpb.Membership
}

// Incarnation numbers one run of a node: a random value chosen at Start
// (Config.Incarnation overrides it in tests). A peer whose incarnation
// changed has restarted. It prints, in logs, errors and %v, as 16
// hexadecimal digits, the one format Cask uses for it.
type Incarnation uint64

// String formats the incarnation as 16 hexadecimal digits.
func (i Incarnation) String() string { return fmt.Sprintf("%016x", uint64(i)) }

// MarshalText makes structured logs (slog's JSON and text handlers) use
// the same form as String.
func (i Incarnation) MarshalText() ([]byte, error) { return []byte(i.String()), nil }
