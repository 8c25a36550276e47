package plumtree

import (
	"fmt"
	"time"
)

// MessageType names a Plumtree protocol message. The zero value is not a
// valid type; Step ignores it.
type MessageType int

// The protocol messages of the paper.
const (
	// Gossip carries a payload (eager push), along a tree branch or in
	// answer to a Graft.
	Gossip MessageType = iota + 1
	// IHave announces ids the sender has received (lazy push).
	IHave
	// Graft asks the receiver for the payloads of IDs and makes the link a
	// tree branch (the receiver moves the sender to its eager set).
	Graft
	// Prune tells the receiver that the sender got a duplicate over this
	// link: the receiver moves the sender to its lazy set.
	Prune
)

var messageTypeNames = [...]string{Gossip: "Gossip", IHave: "IHave", Graft: "Graft", Prune: "Prune"}

func (t MessageType) String() string {
	if t >= Gossip && t <= Prune {
		return messageTypeNames[t]
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// ID names one broadcast: the node it started at and that node's
// sequence number.
type ID struct {
	Origin string
	Seq    uint64
}

func (id ID) String() string { return fmt.Sprintf("%s#%d", id.Origin, id.Seq) }

// Announcement is one id of an IHave with the round (hops from the
// origin) at which the sender received it.
type Announcement struct {
	ID    ID
	Round uint32
}

// Message is one protocol message. Fields a type does not use are zero.
type Message struct {
	Type MessageType
	// From is the node that sent this hop. The state machine fills it in
	// for outgoing messages; the actor sets it to the authenticated peer
	// of received ones.
	From string
	// ID and Round identify a Gossip: Round is the number of hops it has
	// travelled from its origin when sent (0 from the origin).
	ID    ID
	Round uint32
	// Payload is the broadcast content of a Gossip. The state machine
	// never looks inside it.
	Payload []byte
	// IHave lists announced ids; Graft lists wanted ids (Round unused).
	IHave []Announcement
	IDs   []ID
}

// Envelope is a message addressed to one node.
type Envelope struct {
	To  string
	Msg Message
}

// Delivery is a payload received for the first time, for the layer above.
type Delivery struct {
	ID      ID
	Payload []byte
	// Hops is the number of links the payload crossed to get here (1 for
	// a direct neighbour of the origin).
	Hops uint32
	// From is the neighbour it arrived from.
	From string
}

// Output is what one input asks the actor to do.
type Output struct {
	// Send lists messages to deliver, in order.
	Send []Envelope
	// Deliver lists payloads received for the first time, in order.
	Deliver []Delivery
	// Deadline, when not zero, is the earliest time the state machine
	// wants Tick called (an IHave batch to flush, a Graft timer). The
	// actor keeps one timer at the earliest Deadline it was given;
	// calling Tick early or more often is harmless.
	Deadline time.Time
}

// IsEmpty reports whether the output asks for nothing.
func (o Output) IsEmpty() bool {
	return len(o.Send) == 0 && len(o.Deliver) == 0 && o.Deadline.IsZero()
}

func (o *Output) send(to string, m Message) {
	o.Send = append(o.Send, Envelope{To: to, Msg: m})
}
