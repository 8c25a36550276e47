package membership

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cask-p2p/cask/membership/hyparview"
	"github.com/cask-p2p/cask/membership/plumtree"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// ErrBadMessage: a received caskpb.Membership does not map to a protocol
// message (unknown type, no sender). The message is dropped and logged;
// the session stays up.
var ErrBadMessage = errors.New("membership: bad message")

var toWireType = map[hyparview.MessageType]caskpb.MembershipType{
	hyparview.Join:          caskpb.MembershipType_MEMBERSHIP_TYPE_JOIN,
	hyparview.ForwardJoin:   caskpb.MembershipType_MEMBERSHIP_TYPE_FORWARD_JOIN,
	hyparview.Neighbor:      caskpb.MembershipType_MEMBERSHIP_TYPE_NEIGHBOR,
	hyparview.NeighborReply: caskpb.MembershipType_MEMBERSHIP_TYPE_NEIGHBOR_REPLY,
	hyparview.Disconnect:    caskpb.MembershipType_MEMBERSHIP_TYPE_DISCONNECT,
	hyparview.Shuffle:       caskpb.MembershipType_MEMBERSHIP_TYPE_SHUFFLE,
	hyparview.ShuffleReply:  caskpb.MembershipType_MEMBERSHIP_TYPE_SHUFFLE_REPLY,
}

var fromWireType = inverse(toWireType)

// inverse maps each value of m back to its key (the values are distinct).
func inverse[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// encode maps a protocol message to its wire form, with addrs: the
// addresses of the nodes it names, as far as known.
func encode(m hyparview.Message, addrs []*caskpb.NodeAddress) *caskpb.Membership {
	return &caskpb.Membership{
		Addresses:    addrs,
		Type:         toWireType[m.Type],
		From:         m.From,
		Node:         m.Node,
		Ttl:          uint32(clampTTL(m.TTL)),
		HighPriority: m.HighPriority,
		Accepted:     m.Accepted,
		Leaving:      m.Leaving,
		Nodes:        slices.Clone(m.Nodes),
	}
}

// decode maps a received wire message to a protocol message. It never
// panics; an unknown type or a missing sender is ErrBadMessage. TTLs and
// sample sizes are bounded again by the state machine.
func decode(p *caskpb.Membership) (hyparview.Message, error) {
	t, ok := fromWireType[p.GetType()]
	if !ok {
		return hyparview.Message{}, fmt.Errorf("%w: type %v", ErrBadMessage, p.GetType())
	}
	if p.GetFrom() == "" {
		return hyparview.Message{}, fmt.Errorf("%w: %v without a sender", ErrBadMessage, t)
	}
	return hyparview.Message{
		Type:         t,
		From:         p.GetFrom(),
		Node:         p.GetNode(),
		TTL:          clampTTL(int(p.GetTtl())),
		HighPriority: p.GetHighPriority(),
		Accepted:     p.GetAccepted(),
		Leaving:      p.GetLeaving(),
		Nodes:        slices.Clone(p.GetNodes()),
	}, nil
}

// names lists the nodes m names: its sender, its subject and its sample.
func names(m hyparview.Message) []string {
	out := make([]string, 0, 2+len(m.Nodes))
	for _, n := range append([]string{m.From, m.Node}, m.Nodes...) {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// maxAddresses bounds the addresses read from one received message: at
// most one per node it names, and never more than this.
const maxAddresses = 64

// addresses returns the (node, address) pairs of a received message that
// name a node the message names, at most one per node and maxAddresses
// in all. The rest is ignored.
func addresses(p *caskpb.Membership, m hyparview.Message) []*caskpb.NodeAddress {
	named := names(m)
	var out []*caskpb.NodeAddress
	for _, a := range p.GetAddresses() {
		if len(out) == maxAddresses || len(out) == len(named) {
			break
		}
		node := a.GetNode()
		if !slices.Contains(named, node) || slices.ContainsFunc(out, func(o *caskpb.NodeAddress) bool { return o.GetNode() == node }) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// clampTTL keeps a TTL within what both uint32 and int hold.
func clampTTL(ttl int) int {
	return max(0, min(ttl, math.MaxInt32))
}

// The Plumtree messages (package plumtree) travel as caskpb.Membership
// too, with the body in field plumtree.
var ptToWire = map[plumtree.MessageType]caskpb.MembershipType{
	plumtree.Gossip: caskpb.MembershipType_MEMBERSHIP_TYPE_PLUMTREE_GOSSIP,
	plumtree.IHave:  caskpb.MembershipType_MEMBERSHIP_TYPE_PLUMTREE_IHAVE,
	plumtree.Graft:  caskpb.MembershipType_MEMBERSHIP_TYPE_PLUMTREE_GRAFT,
	plumtree.Prune:  caskpb.MembershipType_MEMBERSHIP_TYPE_PLUMTREE_PRUNE,
}

var ptFromWire = inverse(ptToWire)

// maxPlumtreeIDs bounds the ids read from one IHave or Graft; the rest
// are ignored (the announcer's later IHaves, or anti-entropy, make up).
const maxPlumtreeIDs = 4 * plumtree.DefaultMaxIHaveBatch

// isPlumtree reports whether a wire message is a Plumtree message.
func isPlumtree(p *caskpb.Membership) bool {
	_, ok := ptFromWire[p.GetType()]
	return ok
}

// encodePlumtree maps a Plumtree message to its wire form.
func encodePlumtree(m plumtree.Message) *caskpb.Membership {
	body := &caskpb.PlumtreeMessage{}
	switch m.Type {
	case plumtree.Gossip:
		body.Id = &caskpb.PlumtreeId{Origin: m.ID.Origin, Seq: m.ID.Seq, Round: m.Round}
		body.Payload = m.Payload
	case plumtree.IHave:
		for _, a := range m.IHave {
			body.Ids = append(body.Ids, &caskpb.PlumtreeId{Origin: a.ID.Origin, Seq: a.ID.Seq, Round: a.Round})
		}
	case plumtree.Graft:
		for _, id := range m.IDs {
			body.Ids = append(body.Ids, &caskpb.PlumtreeId{Origin: id.Origin, Seq: id.Seq})
		}
	}
	return &caskpb.Membership{Type: ptToWire[m.Type], From: m.From, Plumtree: body}
}

// decodePlumtree maps a received wire message to a Plumtree message. It
// never panics: an unknown type, a missing sender or a Gossip without an
// origin is ErrBadMessage; ids past maxPlumtreeIDs and ids without an
// origin are dropped.
func decodePlumtree(p *caskpb.Membership) (plumtree.Message, error) {
	t, ok := ptFromWire[p.GetType()]
	if !ok {
		return plumtree.Message{}, fmt.Errorf("%w: type %v", ErrBadMessage, p.GetType())
	}
	if p.GetFrom() == "" {
		return plumtree.Message{}, fmt.Errorf("%w: %v without a sender", ErrBadMessage, t)
	}
	m := plumtree.Message{Type: t, From: p.GetFrom()}
	body := p.GetPlumtree()
	switch t {
	case plumtree.Gossip:
		id := body.GetId()
		if id.GetOrigin() == "" {
			return plumtree.Message{}, fmt.Errorf("%w: Gossip without an origin", ErrBadMessage)
		}
		m.ID = plumtree.ID{Origin: id.GetOrigin(), Seq: id.GetSeq()}
		m.Round = id.GetRound()
		m.Payload = body.GetPayload()
	case plumtree.IHave, plumtree.Graft:
		for _, id := range body.GetIds() {
			if len(m.IHave)+len(m.IDs) == maxPlumtreeIDs {
				break
			}
			if id.GetOrigin() == "" {
				continue
			}
			pid := plumtree.ID{Origin: id.GetOrigin(), Seq: id.GetSeq()}
			if t == plumtree.IHave {
				m.IHave = append(m.IHave, plumtree.Announcement{ID: pid, Round: id.GetRound()})
			} else {
				m.IDs = append(m.IDs, pid)
			}
		}
	}
	return m, nil
}

// isGroupMessage reports whether a wire message is a group anti-entropy
// message (GROUP_DIGEST, GROUP_STATES).
func isGroupMessage(p *caskpb.Membership) bool {
	switch p.GetType() {
	case caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_DIGEST, caskpb.MembershipType_MEMBERSHIP_TYPE_GROUP_STATES:
		return true
	}
	return false
}
