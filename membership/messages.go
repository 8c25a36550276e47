package membership

import (
	"errors"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/membership/hyparview"
)

// Errors, for errors.Is.
var (
	// ErrJoinFailed: the contact could not be reached, or dropped this
	// node, before the node had any active peer. The wrapped error names
	// the contact and, when known, the dist layer's reason.
	ErrJoinFailed = errors.New("membership: join failed")
	// ErrNoContact: Join was given an empty contact, a name that is not
	// name@host, or this node itself.
	ErrNoContact = errors.New("membership: no usable contact")
	// ErrStopped: the membership actor is stopped (or stopping).
	ErrStopped = errors.New("membership: stopped")
)

// Reason says why a peer left the active view. It is the String of the
// state machine's reason, so code, logs and docs use one name.
type Reason string

// Reasons carried by PeerDown.
const (
	// ReasonFailed: the session to the peer went down (connection lost,
	// idle timeout, peer restarted or stopped without leaving).
	ReasonFailed Reason = "failed"
	// ReasonEvicted: this node dropped the peer to make room for another
	// (the peer moves to the passive view).
	ReasonEvicted Reason = "evicted"
	// ReasonDisconnected: the peer dropped this node from its active view
	// (the peer moves to the passive view).
	ReasonDisconnected Reason = "disconnected"
	// ReasonLeft: the peer left the overlay (Leave, or a graceful Stop).
	ReasonLeft Reason = "left"
	// ReasonLeave: this node left the overlay (Leave, or Stop).
	ReasonLeave Reason = "leave"
)

// reasonOf maps the state machine's PeerDown reasons.
func reasonOf(r hyparview.Reason) Reason {
	switch r {
	case hyparview.ReasonFailed:
		return ReasonFailed
	case hyparview.ReasonEvicted:
		return ReasonEvicted
	case hyparview.ReasonDisconnected:
		return ReasonDisconnected
	case hyparview.ReasonLeft:
		return ReasonLeft
	case hyparview.ReasonLeave:
		return ReasonLeave
	}
	return Reason(r.String())
}

// Events, sent (as pointers) by the membership actor to every subscriber,
// in the order they happened. See doc.go for the guarantees.
type (
	// PeerUp: Node entered this node's active view and its session is up.
	PeerUp struct {
		Node string
	}
	// PeerDown: Node, announced by an earlier PeerUp, left the active view.
	PeerDown struct {
		Node   string
		Reason Reason
	}
	// Joined: a Join (Node.Join, the Join message or ContactNodes)
	// succeeded: this node has its first active peer (announced by a
	// PeerUp just before). Sent once per join; again only after Left.
	Joined struct {
		// Contact is the node the successful Join went through.
		Contact string
	}
	// Left: this node left the overlay (Leave or Stop), after the
	// PeerDown{leave} of every active peer.
	Left struct{}
)

// Requests to the membership actor (Membership.PID). Each answer goes to
// the request's sender.
type (
	// Join asks the node to join the overlay through Contact. The answer,
	// *JoinResult, comes when the node has an active peer or the attempt
	// failed; a node that left takes part again.
	Join struct {
		Contact string
	}
	// JoinResult answers Join. Err wraps ErrJoinFailed, ErrNoContact or
	// ErrStopped.
	JoinResult struct {
		Contact string
		Err     error
	}
	// Leave asks the node to leave: every active peer gets a Disconnect
	// (leaving) and the node stops taking part until the next Join. The
	// answer, *LeaveResult, comes once the Disconnects are handed to the
	// dist layer.
	Leave struct{}
	// LeaveResult answers Leave.
	LeaveResult struct {
		Err error
	}
	// Subscribe adds Subscriber to the event subscribers. It gets PeerUp
	// for every current active peer, and Joined if the node has joined,
	// at once, then every later event. Subscribing twice is one
	// subscription. A subscriber that stops is unsubscribed.
	Subscribe struct {
		Subscriber *actor.PID
	}
	// Unsubscribe removes a subscriber.
	Unsubscribe struct {
		Subscriber *actor.PID
	}
	// GetViews asks for *Views.
	GetViews struct{}
	// Views holds both views, sorted. Active lists the peers announced by
	// PeerUp and not yet by PeerDown.
	Views struct {
		Active  []string
		Passive []string
	}
	// GetStats asks for *Stats.
	GetStats struct{}
	// Stats counts membership traffic since the actor started.
	Stats struct {
		// Sent and Received count membership messages.
		Sent, Received uint64
		// Rounds counts shuffle periods (Ticks) run.
		Rounds uint64
		// Subscribers is the number of current subscribers.
		Subscribers int
		// Broadcast counts Plumtree messages: sent and received, and
		// payloads delivered for the first time.
		BroadcastSent, BroadcastReceived, BroadcastDelivered uint64
		// BroadcastPayloads counts the Plumtree messages sent that carry
		// a payload (Gossip; the rest are IHave, Graft and Prune).
		BroadcastPayloads uint64
		// AntiEntropySent counts group digests and state pushes sent.
		AntiEntropySent uint64
		// Refuted counts the times this node published its state again
		// because a peer held it down or newer; Suspected the nodes it
		// took for down for want of a heartbeat.
		Refuted, Suspected uint64
		// GroupNodes is the number of node states held (down ones
		// included); Groups the number of groups with a member.
		GroupNodes, Groups int
		// Reconnects counts the attempts to reach a lost node or a
		// contact (Config.ReconnectPeriod); Rejoins the joins started
		// through one that answered. Lost is the number of nodes
		// remembered as lost.
		Reconnects, Rejoins uint64
		Lost                int
	}
)

// Errors of process groups and names, for errors.Is.
var (
	// ErrNotLocal: JoinGroup, LeaveGroup or RegisterName was given a PID
	// of another node (or nil). Each node publishes its own actors only.
	ErrNotLocal = errors.New("membership: not a local actor")
	// ErrBadName: an empty group or name, or one longer than 255 bytes.
	ErrBadName = errors.New("membership: bad group or name")
	// ErrNameTaken: RegisterName of a name this node already knows to be
	// held by another actor.
	ErrNameTaken = errors.New("membership: name already registered")
	// ErrNameNotHeld: UnregisterName of a name no local actor holds.
	ErrNameNotHeld = errors.New("membership: name not held by a local actor")
)

// Requests about process groups and names (Membership.PID). Each answer
// goes to the request's sender. See doc.go, "Process groups and names".
type (
	// JoinGroup adds local actors to Group. Answer: *GroupResult.
	JoinGroup struct {
		Group string
		PIDs  []*actor.PID
	}
	// LeaveGroup removes local actors from Group. Answer: *GroupResult.
	LeaveGroup struct {
		Group string
		PIDs  []*actor.PID
	}
	// GroupResult answers JoinGroup and LeaveGroup. Err wraps ErrNotLocal,
	// ErrBadName or ErrStopped.
	GroupResult struct {
		Err error
	}
	// MonitorGroup sends *GroupChanged for Group to Subscriber: first the
	// current members (as Joined, possibly none), then every change. A
	// subscriber that stops is removed. Monitoring twice is one monitor.
	MonitorGroup struct {
		Group      string
		Subscriber *actor.PID
	}
	// DemonitorGroup removes a monitor.
	DemonitorGroup struct {
		Group      string
		Subscriber *actor.PID
	}
	// RegisterName registers Name for the local actor PID cluster-wide.
	// Answer: *NameResult.
	RegisterName struct {
		Name string
		PID  *actor.PID
	}
	// UnregisterName releases Name, held by a local actor. Answer:
	// *NameResult.
	UnregisterName struct {
		Name string
	}
	// NameResult answers RegisterName and UnregisterName. Err wraps
	// ErrNameTaken, ErrNameNotHeld, ErrNotLocal, ErrBadName or ErrStopped.
	NameResult struct {
		Err error
	}
)

// Events of process groups and names.
type (
	// GroupChanged tells a group monitor which members joined and left
	// Group, as this node saw it (sorted by node, then id). The first one
	// after MonitorGroup lists the current members as Joined.
	GroupChanged struct {
		Group  string
		Joined []*actor.PID
		Left   []*actor.PID
	}
	// NameLost is sent to a local actor whose registration of Name lost
	// to a concurrent one under the conflict rule: the lower Lamport
	// stamp wins, then the lower node name. The name is no longer
	// registered for it. Winner is the claim that beat it as this node
	// knew at the time; when several registrations race, a claim that
	// beats Winner may still arrive, so Whereis gives the final owner.
	NameLost struct {
		Name   string
		Winner *actor.PID
	}
)
