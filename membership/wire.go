package membership

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cask-p2p/cask/membership/hyparview"
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

var fromWireType = func() map[caskpb.MembershipType]hyparview.MessageType {
	m := make(map[caskpb.MembershipType]hyparview.MessageType, len(toWireType))
	for k, v := range toWireType {
		m[v] = k
	}
	return m
}()

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
