package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/membership"
)

// startMembership starts the node's membership actor with
// Config.Membership, whose Logger Config.WithDefaults set to the node's
// unless the section sets one.
func (n *Node) startMembership() error {
	m, err := membership.Start(n.system, n.dist, n.cfg.Membership)
	if err != nil {
		return fmt.Errorf("actors: start membership: %w", err)
	}
	n.membership = m
	return nil
}

// stopMembership leaves the overlay and stops the membership actor; the
// dist layer must still be running so active peers hear of the leave.
func (n *Node) stopMembership() error {
	if n.membership == nil {
		return nil
	}
	return n.membership.Stop()
}

// Join joins the HyParView overlay through contact and waits until this
// node has an active peer, the attempt failed (membership.ErrJoinFailed)
// or ctx ended.
func (n *Node) Join(ctx context.Context, contact string) error {
	return n.membership.Join(ctx, contact)
}

// Leave leaves the overlay: active peers get PeerDown{left}, this node's
// subscribers PeerDown{leave} for each and then Left. The node takes no
// part in membership until the next Join. Channels stay open for other
// traffic.
func (n *Node) Leave(ctx context.Context) error { return n.membership.Leave(ctx) }

// ActiveView lists the membership active view, sorted: the peers
// announced by membership.PeerUp and not yet by PeerDown. It is a subset
// of Nodes(), which lists every live session.
func (n *Node) ActiveView() []string { return n.membership.ActiveView() }

// PassiveView lists the membership passive view, sorted: known nodes kept
// in reserve, not necessarily connected.
func (n *Node) PassiveView() []string { return n.membership.PassiveView() }

// Subscribe sends membership events (membership.PeerUp, PeerDown, Joined,
// Left, as pointers) to pid, a local actor, starting with PeerUp for every
// current active peer. A subscriber that stops is unsubscribed.
func (n *Node) Subscribe(pid *actor.PID) { n.membership.Subscribe(pid) }

// Unsubscribe stops sending membership events to pid.
func (n *Node) Unsubscribe(pid *actor.PID) { n.membership.Unsubscribe(pid) }

// Membership is the membership actor's PID, for the actor-message forms
// of the API (membership.Join, Leave, Subscribe, GetViews, GetStats).
func (n *Node) Membership() *actor.PID { return n.membership.PID() }

// JoinGroup adds local actors to a process group (Erlang pg:join); every
// node sees them in GroupMembers once the change has spread over the
// overlay. Members leave with LeaveGroup, when they stop, and when this
// node is down or leaves. See membership.Membership.JoinGroup.
func (n *Node) JoinGroup(ctx context.Context, group string, pids ...*actor.PID) error {
	return n.membership.JoinGroup(ctx, group, pids...)
}

// LeaveGroup removes local actors from a process group.
func (n *Node) LeaveGroup(ctx context.Context, group string, pids ...*actor.PID) error {
	return n.membership.LeaveGroup(ctx, group, pids...)
}

// GroupMembers lists the members of group on every node, as this node
// knows them (eventually consistent), sorted by node, then id.
func (n *Node) GroupMembers(group string) []*actor.PID { return n.membership.GroupMembers(group) }

// Groups lists the process groups with at least one member, sorted.
func (n *Node) Groups() []string { return n.membership.Groups() }

// MonitorGroup sends *membership.GroupChanged events for group to
// subscriber: first the current members, then every join and leave.
func (n *Node) MonitorGroup(group string, subscriber *actor.PID) {
	n.membership.MonitorGroup(group, subscriber)
}

// DemonitorGroup stops the events of MonitorGroup.
func (n *Node) DemonitorGroup(group string, subscriber *actor.PID) {
	n.membership.DemonitorGroup(group, subscriber)
}

// RegisterName registers a cluster-wide name for a local actor (Erlang
// global:register_name). See membership.Membership.RegisterName for the
// conflict rule and *membership.NameLost.
func (n *Node) RegisterName(ctx context.Context, name string, pid *actor.PID) error {
	return n.membership.RegisterName(ctx, name, pid)
}

// UnregisterName releases a name held by a local actor.
func (n *Node) UnregisterName(ctx context.Context, name string) error {
	return n.membership.UnregisterName(ctx, name)
}

// Whereis returns the actor registered under name, as this node knows it.
func (n *Node) Whereis(name string) (*actor.PID, bool) { return n.membership.Whereis(name) }

// RegisteredNames lists the cluster-wide names this node knows, sorted.
func (n *Node) RegisteredNames() []string { return n.membership.Names() }
