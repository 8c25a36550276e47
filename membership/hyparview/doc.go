// Package hyparview is the HyParView membership protocol (Leitão,
// Pereira, Rodrigues, DSN 2007) as a pure state machine.
//
// A State holds one node's two views: a small, symmetric active view
// (the peers it keeps links to and floods broadcasts over) and a larger
// passive view (known nodes kept in reserve). It owns no goroutine,
// socket, clock or global random source: every input carries the
// current time, all randomness comes from Config.Rand, and every input
// returns an Output saying what to send, which links to open or close
// and how the active view changed. The membership actor around it does
// the I/O, in the style of etcd-io/raft.
//
// # Inputs
//
// All methods must be called from one goroutine (the actor's). None
// blocks; each returns its Output at once.
//
//   - Join(contact, now): start (or restart) joining through contact.
//     The contact enters the active view at once and is sent a Join.
//   - Step(msg, now): a message received from msg.From. Messages with
//     no sender, from self, or of an unknown type are ignored. The actor
//     should set or check msg.From against the authenticated peer.
//   - LinkUp(node, now): a link to node is usable. The actor calls it
//     for every node listed in Output.Open (at once if the link already
//     exists), or LinkDown if the link cannot be opened: one of the two
//     must follow every Open. A Neighbor request waiting for that link
//     goes out now.
//   - LinkDown(node, now): the link to node failed or closed. An active
//     peer is dropped (PeerDown, ReasonFailed) and replaced from the
//     passive view at once; a pending Neighbor request counts as a
//     failed attempt; for other nodes LinkDown is ignored.
//   - Tick(now): one membership round, called every shuffle period
//     (DefaultShufflePeriod): age the passive view, expire Neighbor
//     requests sent two Ticks ago and still unanswered (a failed
//     attempt), refill the active view from the passive view, and start
//     one Shuffle. A request whose link is still opening does not
//     expire (the actor reports every Open with LinkUp or LinkDown, and
//     a connect may take longer than a round); after two Ticks it gives
//     up its slot, so refill asks another node meanwhile, and its
//     Neighbor goes out on LinkUp only if a slot is still free.
//   - Leave(now): send Disconnect (Leaving) to every active peer and
//     stop taking part until the next Join. While left, a Neighbor is
//     refused and Join, ForwardJoin, Shuffle and accepting replies are
//     answered with Disconnect (Leaving).
//
// # Outputs
//
// The actor applies an Output in this order: open the links in Open,
// deliver the messages in Send in order (a message to a node with no
// link opens one on demand; per destination, order must be kept), then
// act on Close. Close is advisory: membership no longer needs the link,
// but the actor may keep it while other layers use it. A node never
// appears in both Open and Close of one Output. Events list every
// active-view change in the order it happened; the actor publishes them
// as PeerUp / PeerDown with their Reason.
//
// # Protocol decisions
//
// The paper leaves some choices open; these are ours.
//
//   - Join: the contact adds the joiner (evicting a random peer with a
//     Disconnect if full) and sends ForwardJoin(TTL = ARWL) to each of
//     its other active peers. A receiver whose TTL is 0, or that has at
//     most one active peer (or no peer to forward to but the sender),
//     adds the joiner; at TTL = PRWL it puts the joiner in its passive
//     view; otherwise it forwards to a random active peer other than the
//     sender, TTL-1.
//   - Symmetry: whoever adds a node to its active view makes sure the
//     node learns it. The node ending a ForwardJoin walk sends the joiner
//     a high-priority Neighbor, which is always accepted; Join and
//     accepted Neighbor requests are symmetric by construction.
//   - Neighbor requests: a free active slot makes refill pick a random
//     passive node whose backoff has expired, list it in Open, and send
//     Neighbor on LinkUp. The request is high priority if the active view
//     is empty then and no other high-priority request is outstanding.
//     High priority is always accepted (evicting if full); low priority
//     only while the active view is not full. Refill keeps active plus
//     pending requests at most ActiveSize (a request whose link is
//     still opening after two Ticks no longer counts); it runs on
//     LinkDown, on a refusal (moving on to another passive node at
//     once), on a Disconnect and on Tick.
//   - Refill on Disconnect: the paper repairs the active view on
//     failures only. We also replace a link lost to a Disconnect at once
//     (asking the node that dropped us last). Without it, nodes evicted
//     while joins pour in keep losing links until the next Tick; in the
//     simulation 19 of 20 seeds left islands after the join phase, and
//     islands whose members all have full active views never merge
//     again (5 of 20 seeds stayed partitioned after 50 rounds). With it,
//     none did.
//   - Races: an accepting reply that finds the active view full again,
//     or that answers nothing we asked, is answered with Disconnect. A
//     late one (its request expired, the node is still in the passive
//     view) is taken while there is room: the peer already holds us, so
//     a Disconnect would only undo a link both sides agreed on. A refusal
//     from a node already active (crossed requests) is ignored; the
//     peer's own later messages settle the link. A ForwardJoin or
//     Shuffle (which travel over active links only) from a node not in
//     the active view is answered with Disconnect, so a one-sided link
//     cannot last. With in-order delivery the other rules already keep
//     views symmetric; this one is a safety net for lost messages.
//   - Leaving the active view: an evicted peer and the sender of a
//     Disconnect move to the passive view; a failed peer (LinkDown) and
//     a leaving one (Disconnect with Leaving) are dropped altogether.
//   - Failures: each failed attempt to reach a passive node doubles its
//     backoff, from BackoffMin up to BackoffMax; MaxFailures failures in
//     a row drop it. Any message from the node resets its count; a
//     refusal delays it by BackoffMin without counting as a failure.
//   - Passive ageing: an entry's age restarts when it is inserted or
//     when there is direct evidence of the node (a message from it, a
//     link to it coming up, its demotion from the active view). Hearsay
//     (a Shuffle naming it again) does not. Tick drops entries older
//     than PassiveMaxAge.
//   - Shuffle: Tick sends self, ka random active peers (other than the
//     target) and kp random passive ids to a random active peer, with
//     TTL ShuffleTTL. A receiver with TTL 0 or at most one active peer
//     accepts; otherwise it forwards to a random active peer other than
//     the sender and the origin, TTL-1. The acceptor answers the origin
//     directly with as many random passive ids. Both merge what they
//     received into their passive views, skipping self, active peers
//     and known ids; when full they evict the ids they sent first, then
//     random ones. Passive ids we failed to reach since we last heard
//     from them are not handed out (this keeps dead ids from spreading
//     after mass failures).
//   - Untrusted input: TTLs are clamped to [0, ARWL] or [0, ShuffleTTL];
//     only the first 1+ka+kp ids of a shuffle sample are read.
//
// # Rounds and determinism
//
// A round is one Tick on every node. Given the same Config (seed
// included) and the same inputs in the same order, a State produces the
// same Outputs: it never iterates over maps and draws every random
// choice from Config.Rand.
//
// # Simulation
//
// sim_test.go runs 1,000 States in an in-process network that delivers
// all messages in one FIFO queue, opens links instantly to live nodes
// and answers any attempt to reach a failed node with LinkDown. Nodes
// join one by one through a random node already in, then 50 shuffle
// rounds run (a round: Tick on every live node, then deliver until
// quiet). From copies of that steady state it fails 10% to 95% of the
// nodes at once (their live neighbours get LinkDown) and floods
// broadcasts over the active views: right after the failure, after the
// LinkDowns are handled, and after each healing round, until 99% of the
// live nodes are reached (at most 10 rounds). It prints the table next
// to the paper's figures:
//
//	go test -run TestSimulation -v ./membership/hyparview/
//
// The paper measures reliability while failures are being detected (a
// TCP send to a dead peer triggers repair during the broadcast); the
// column "after LinkDown" is the comparable one. The column "rel. at
// fail" floods over stale active views with no repair at all.
//
// slow_test.go runs 16 States on a network where opening a link and
// delivering a message take several rounds (a loaded machine, where a
// connect outlasts two shuffle periods) and checks that the views still
// settle symmetric and connected.
package hyparview
