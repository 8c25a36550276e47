// Package membership is the HyParView membership actor of a Cask node: it
// keeps the node in a small, symmetric active view of peers (default 5)
// with a larger passive view of spares (default 30), and publishes PeerUp
// / PeerDown{Reason} / Joined / Left to subscriber PIDs. Over the same
// active view it runs Plumtree broadcast (package plumtree) to spread
// process groups and cluster-wide names (see "Process groups and
// names" below, and docs/groups.md).
//
// The protocol itself is the pure state machine of package hyparview.
// This package is the actor around it: it feeds the state machine
// messages, link events and one Tick per ShufflePeriod, and carries out
// each Output through the dist layer. It reads time only through
// Config.Now and draws randomness only from Config.Seed.
//
// # Wiring to the dist layer
//
//   - Messages travel on the dist control stream: the actor sends
//     dist.SendMembership{Node, Msg} to the dist manager (which opens the
//     session on demand) and receives dist.MembershipReceived, set up
//     with Manager.SetMembershipHandler. From is the session's
//     authenticated peer and overrides the message's own sender field.
//     caskpb.Membership mirrors hyparview.Message field by field; a
//     message that does not map (unknown type, no sender) is logged and
//     dropped, the session stays up.
//   - Addresses: caskpb.Membership also carries the addresses of the
//     nodes a message names; the state machine never sees them. On send
//     the actor attaches Dist.AdvertisedAddr for itself and what
//     Dist.LearnedAddrs holds for the others (the receiver is left out);
//     on receipt it adds them to Dist.LearnedAddrs before stepping the
//     state machine, the sender's own as first-hand (AddrAdvertised), the
//     others as gossip (AddrGossip), at most one per named node. So a
//     node that knows one contact's address can link to every node it
//     hears of (docs/membership.md, "How nodes find each other").
//   - Links: the actor monitors every node (dist.MonitorNode with an
//     empty node). NodeUp is LinkUp, NodeDown (any reason, including
//     connect_failed) is LinkDown. For Output.Open it sends dist.Connect
//     unless the session is up, in which case it calls LinkUp at once.
//   - Pins: every node in the active view has its session pinned
//     (dist.Pin) against idle reaping, and unpinned when it leaves the
//     view. Output.Close is advisory: the session stays open for other
//     traffic and, once unpinned, the idle reaper closes it if nobody
//     uses it.
//
// # Events
//
// Subscribers (local actors; Subscribe / Node.Subscribe) get, as
// pointers, in the order they happened, from the membership actor's
// goroutine:
//
//   - *PeerUp{Node}: Node is in the active view and its session is up.
//     A peer the protocol adds before its session is up is announced when
//     NodeUp arrives; one that leaves the view before that is never
//     announced, and no PeerDown follows.
//   - *PeerDown{Node, Reason}: an announced peer left the active view.
//     Reasons: failed (the session went down: idle timeout, reset, peer
//     stopped or restarted without leaving), evicted (this node made room
//     for another), disconnected (the peer dropped this node), left (the
//     peer left the overlay), leave (this node left).
//   - *Joined{Contact}: a Join (Node.Join, the Join message or
//     ContactNodes) completed with the node's first announced peer, just
//     after that PeerUp. Once per join; again only after Left.
//   - *Left{}: this node left (Leave or Stop), after a PeerDown{leave}
//     for each active peer.
//
// Each transition is sent exactly once: a PeerUp for a peer already up,
// or a PeerDown for a peer not up, never happens. A new subscriber first
// gets PeerUp for every current active peer (and Joined if the node has
// joined), then every later event. A subscriber that stops is
// unsubscribed (the actor watches it). Send to subscribers never blocks.
//
// # Requests
//
// The same API as messages to the actor (Membership.PID, Node.Membership):
// Join → *JoinResult (when the node has an active peer or the attempt
// failed), Leave → *LeaveResult, Subscribe, Unsubscribe, GetViews →
// *Views, GetStats → *Stats. The blocking methods of Membership and
// actors.Node wrap them; a Join whose caller gives up (ctx) goes on in
// the background.
//
// # Join, retry, failure
//
// ContactNodes are joined at Start, one at a time, in order: a failed
// attempt (the contact left the active view before its session came up,
// typically NodeDown{connect_failed}) moves on to the next after a
// backoff doubling from BackoffMin to BackoffMax. Whenever the node has
// not left and its active view is empty at a shuffle period, it joins
// through them again. A node that called Leave stays out until Join.
//
// An active peer whose session goes down is dropped (PeerDown{failed})
// and replaced at once from the passive view; failed passive nodes are
// retried with backoff and dropped after MaxFailures. How fast a silent
// peer is noticed is the transport's IdleTimeout (actors.Config.Transport).
//
// # Reconnect (reconnect.go)
//
// The actor remembers lost nodes: an active peer whose session ended
// with connection_lost, and a node whose group heartbeat stood still
// (at most MaxLostNodes, each for TombstoneTTL; forgotten when it is an
// announced peer again). Every ReconnectPeriod (jittered ±50 %) it picks
// one of them, or of the ContactNodes it has heard of, that is not in
// the active view, not being linked, and of which it has no news through
// the overlay (its group state down, suspected, or for a lost node
// unknown); it sends dist.Connect unless
// the session is up, and when the ConnectResult is a success it joins
// through that node (Join without a waiter, not retried). This is how
// the halves of a healed partition become one overlay again; a healthy
// cluster has news of everyone and tries nothing. Negative
// ReconnectPeriod: off.
//
// # Views and Nodes
//
// ActiveView lists the announced peers: each has a live session, so the
// active view is a subset of actors.Node.Nodes, which lists every live
// session (on-demand sessions of application traffic included).
// PassiveView lists nodes known but not necessarily connected.
//
// With Config.MeterProvider set, the sizes of both views are the gauges
// cask.membership.active_view and passive_view, read from the snapshot
// the actor stores after each message, and every event published to
// subscribers counts in cask.membership.events by kind
// (docs/observability.md).
//
// # Process groups and names
//
// groups.go holds the registry: one state per node (its groups and name
// claims, a version, a down flag, a heartbeat), of which only the own one
// is written locally; groups_actor.go drives it from the actor:
//
//   - Requests JoinGroup, LeaveGroup (→ *GroupResult), RegisterName,
//     UnregisterName (→ *NameResult), MonitorGroup, DemonitorGroup. Only
//     local PIDs may join or register (ErrNotLocal). The actor watches
//     them: a stopped actor leaves its groups and names.
//   - Every change of the own state is broadcast whole with Plumtree
//     (caskpb.GroupNodeState as the payload); a received state replaces
//     the one held if its version is higher (or equal and down).
//   - Plumtree's neighbours are the announced active peers: NeighborUp
//     just after PeerUp is published, NeighborDown just after PeerDown.
//     Its timer is one time.AfterFunc at the earliest Output.Deadline.
//   - Anti-entropy: a GROUP_DIGEST (every node's version and heartbeat)
//     goes to every peer at its PeerUp and to one random active peer
//     every AntiEntropyPeriod; the receiver pushes the states it holds
//     newer (GROUP_STATES) and answers a digest that asks with its own.
//     The own heartbeat rises every period; a node whose heartbeat has
//     not risen for HeartbeatTimeout, and with no live session here, is
//     left out of this node's view (not spread) until it rises again.
//   - Down: a dist.NodeDown of an active peer whose reason means the
//     node is gone (connection_lost, peer_shutdown, protocol_error,
//     controller_crashed) marks that node's state down and broadcasts
//     it, one second later and only if no session to it came back.
//     Leave (and Stop) broadcasts the own state as down first; the next
//     Join publishes it up again. An active peer that receives a leaving
//     Disconnect (PeerDown{left}) marks the leaver down and broadcasts
//     that as well, since the leaver's own broadcast may not get out. A node that sees a newer or down state
//     of itself publishes a higher version (refutation).
//   - Events, sent from the actor's goroutine, never blocking:
//     *GroupChanged to group monitors (first the current members, then
//     each change in order), *NameLost to a local actor whose claim lost
//     under the rule lowest Lamport stamp, then lowest node name.
//   - Readers (GroupMembers, Groups, Whereis, Names) load a snapshot the
//     actor stores after each change: no locks, no requests.
//
// # Lifecycle
//
// Start spawns the actor (named ActorName) on a started dist layer. Stop
// leaves the overlay, so active peers see PeerDown{left} rather than a
// failure, then stops the actor: its timers are stopped, its pins
// released, its handler and monitor removed. Stop is safe to call twice;
// call it before stopping the dist layer (actors.Node.Stop does).
package membership
