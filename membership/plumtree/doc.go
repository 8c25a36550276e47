// Package plumtree is Plumtree, epidemic broadcast trees (Leitão,
// Pereira, Rodrigues, SRDS 2007), as a pure state machine.
//
// A State spreads broadcasts over a node's neighbours (the HyParView
// active view): full payloads go to the eager peers, which form a
// spanning tree, and short IHave announcements go to the lazy peers,
// which keep the rest of the overlay as a repair path. It owns no
// goroutine, socket, clock or random source: every input carries the
// current time and returns an Output saying what to send, which payloads
// to deliver and when the next timer is due. The membership actor around
// it does the I/O, in the style of package hyparview.
//
// # Inputs
//
// All methods must be called from one goroutine (the actor's). None
// blocks.
//
//   - NeighborUp(node, now) / NeighborDown(node, now): the actor calls
//     them as nodes enter and leave its active view. A new neighbour is
//     eager; a lost one is removed from both sets and from the announcers
//     of missing ids.
//   - Broadcast(payload, now): start a broadcast; returns its ID. The
//     payload is not delivered to this node.
//   - Step(msg, now): a message received from msg.From (the actor sets
//     it to the authenticated peer).
//   - Tick(now): run the timers due: Grafts for missing payloads, then
//     the batched IHaves. The actor calls it at Output.Deadline.
//
// # Outputs
//
// Output.Send lists messages in order; Output.Deliver lists payloads
// received for the first time, with their hop count; Output.Deadline
// (zero: none) is when Tick is next wanted.
//
// # The protocol, and the choices the paper leaves open
//
//   - Gossip (first copy): deliver, remember (id, round, payload), move
//     the sender to eager if it was lazy, send the payload to every other
//     eager peer and queue an IHave for every other lazy peer.
//   - Gossip (duplicate): the sender is moved to lazy and sent a Prune,
//     even when it was lazy here already: it pushed the payload, so it
//     still holds this node as eager.
//   - Prune: the sender is moved to lazy.
//   - IHave: every id not received is recorded as missing with its
//     announcer; the first announcement of an id starts a GraftTimeout
//     timer. At most MaxAnnouncers per id and MaxMissing ids are kept.
//   - Timer: for each missing id whose timer expired, the oldest
//     remaining announcer is moved to eager and sent a Graft (one Graft
//     per peer per Tick, listing every id wanted of it); the next
//     announcer gets its turn after GraftRetry.
//   - Graft: the sender is moved to eager and sent the cached payload of
//     each id it lists (if still cached).
//   - IHave batching: announcements are queued per lazy peer and sent
//     LazyDelay after the first one was queued, or at once when a peer's
//     queue reaches MaxIHaveBatch.
//   - Caches: received ids (with their payloads, to answer Grafts) are
//     kept in arrival order, at most CacheSize, each for CacheTTL of the
//     time passed in; missing ids expire after CacheTTL too. Time is
//     only what the inputs carry, so the caches expire the same way in a
//     simulation and in a node.
//   - Not implemented: the paper's optional tree optimisation (swapping
//     an eager link for a lazy one that announced a message many rounds
//     earlier). Trees stay as repairs left them until a duplicate prunes
//     them.
//   - A payload that reaches a node only after the broadcast passed (a
//     neighbour that came up later) is not sent again: Plumtree is a
//     broadcast, not a store. The groups layer above it repairs that with
//     anti-entropy (docs/membership.md).
//
// # Determinism
//
// Given the same Config and the same inputs in the same order, a State
// produces the same Outputs: it iterates only over slices.
//
// # Simulation
//
// sim_test.go builds a 1,000-node HyParView overlay with package
// hyparview, runs Plumtree over its active views with a per-message
// latency and fails 0%, 20% and 40% of the nodes; it prints reliability,
// relative message redundancy and last delivery hop per phase, and the
// same for eager push (a flood over the same overlay, the same failed
// nodes), the protocol the paper compares Plumtree with
// (docs/membership.md puts them side by side):
//
//	go test -run 'TestSimulation$' -v ./membership/plumtree/
package plumtree
