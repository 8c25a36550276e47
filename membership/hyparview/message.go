package hyparview

import "fmt"

// MessageType names a HyParView protocol message. The zero value is not
// a valid type; Step ignores it.
type MessageType int

// The protocol messages, in the order the paper introduces them.
const (
	// Join is sent by a joining node to its contact.
	Join MessageType = iota + 1
	// ForwardJoin carries a joining node (Node) on a random walk of TTL
	// hops through the active views.
	ForwardJoin
	// Neighbor asks the receiver to put the sender in its active view;
	// HighPriority requests cannot be refused.
	Neighbor
	// NeighborReply answers a Neighbor; Accepted says whether the
	// receiver now holds the sender in its active view.
	NeighborReply
	// Disconnect tells the receiver that the sender dropped it from its
	// active view; Leaving says the sender left the overlay.
	Disconnect
	// Shuffle carries a sample of ids (Nodes) from its origin (Node) on
	// a random walk of TTL hops.
	Shuffle
	// ShuffleReply answers a Shuffle, sent straight to its origin, with
	// a sample of the receiver's passive view.
	ShuffleReply
)

var messageTypeNames = [...]string{
	Join:          "Join",
	ForwardJoin:   "ForwardJoin",
	Neighbor:      "Neighbor",
	NeighborReply: "NeighborReply",
	Disconnect:    "Disconnect",
	Shuffle:       "Shuffle",
	ShuffleReply:  "ShuffleReply",
}

func (t MessageType) String() string {
	if t >= Join && t <= ShuffleReply {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// Message is one protocol message. It is a plain struct; the actor maps
// it to and from the wire. Fields a type does not use are zero.
type Message struct {
	Type MessageType
	// From is the node that sent this hop. The state machine fills it in
	// for outgoing messages; the actor should check (or overwrite) it
	// against the authenticated peer of the link a message arrived on.
	From string
	// Node is the subject: the joining node of a ForwardJoin, the origin
	// of a Shuffle.
	Node string
	// TTL is the remaining hops of a ForwardJoin or Shuffle walk.
	TTL int
	// HighPriority marks a Neighbor request from a node whose active
	// view is empty (or a node completing a join, see doc.go).
	HighPriority bool
	// Accepted is the answer carried by a NeighborReply.
	Accepted bool
	// Leaving marks a Disconnect sent because the sender left.
	Leaving bool
	// Nodes is the id sample of a Shuffle or ShuffleReply.
	Nodes []string
}

// Envelope is a message addressed to one node.
type Envelope struct {
	To  string
	Msg Message
}

// EventKind says whether a peer entered or left the active view.
type EventKind int

// Event kinds.
const (
	// PeerUp: the node entered the active view.
	PeerUp EventKind = iota + 1
	// PeerDown: the node left the active view.
	PeerDown
)

func (k EventKind) String() string {
	switch k {
	case PeerUp:
		return "PeerUp"
	case PeerDown:
		return "PeerDown"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Reason says why a peer entered or left the active view.
type Reason int

// Reasons. The first three go with PeerUp, the rest with PeerDown.
const (
	// ReasonJoin: the peer joined through us, or we joined through it.
	ReasonJoin Reason = iota + 1
	// ReasonForwardJoin: a ForwardJoin walk for the peer ended here.
	ReasonForwardJoin
	// ReasonNeighbor: a Neighbor request, ours or the peer's, was accepted.
	ReasonNeighbor
	// ReasonFailed: the link to the peer went down (LinkDown).
	ReasonFailed
	// ReasonEvicted: we dropped the peer to make room for another.
	ReasonEvicted
	// ReasonDisconnected: the peer dropped us (its Disconnect).
	ReasonDisconnected
	// ReasonLeft: the peer left the overlay (Disconnect with Leaving).
	ReasonLeft
	// ReasonLeave: we left the overlay (Leave).
	ReasonLeave
)

var reasonNames = [...]string{
	ReasonJoin:         "join",
	ReasonForwardJoin:  "forward-join",
	ReasonNeighbor:     "neighbor",
	ReasonFailed:       "failed",
	ReasonEvicted:      "evicted",
	ReasonDisconnected: "disconnected",
	ReasonLeft:         "left",
	ReasonLeave:        "leave",
}

func (r Reason) String() string {
	if r >= ReasonJoin && r <= ReasonLeave {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// Event reports a change of the active view, for the actor to publish.
type Event struct {
	Kind   EventKind
	Node   string
	Reason Reason
}

// Output is what one input asks the actor to do. See doc.go for the
// order in which the actor applies it.
type Output struct {
	// Send lists messages to deliver, in order. A message to a node with
	// no link opens one on demand.
	Send []Envelope
	// Open lists nodes the state machine needs a link to. For each, the
	// actor calls LinkUp once the link is usable (at once if it already
	// is) or LinkDown if it cannot be opened.
	Open []string
	// Close lists nodes whose link membership no longer needs. Advisory:
	// the actor may keep a link other layers still use.
	Close []string
	// Events lists active-view changes in the order they happened.
	Events []Event
}

// IsEmpty reports whether the output asks for nothing.
func (o Output) IsEmpty() bool {
	return len(o.Send) == 0 && len(o.Open) == 0 && len(o.Close) == 0 && len(o.Events) == 0
}

func (o *Output) send(to string, m Message) {
	o.Send = append(o.Send, Envelope{To: to, Msg: m})
}

// open and close keep one decision per node: the later one wins.
func (o *Output) open(node string) {
	o.Close = without(o.Close, node)
	if !contains(o.Open, node) {
		o.Open = append(o.Open, node)
	}
}

func (o *Output) close(node string) {
	o.Open = without(o.Open, node)
	if !contains(o.Close, node) {
		o.Close = append(o.Close, node)
	}
}

func (o *Output) event(kind EventKind, node string, reason Reason) {
	o.Events = append(o.Events, Event{Kind: kind, Node: node, Reason: reason})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func without(list []string, s string) []string {
	for i, v := range list {
		if v == s {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}
