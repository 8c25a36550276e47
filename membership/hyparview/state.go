package hyparview

import (
	"math/rand/v2"
	"slices"
	"time"
)

// passiveEntry is one node of the passive view.
type passiveEntry struct {
	node string
	// seen is when the entry was inserted or last had direct evidence
	// of life (a message from the node, a link to it coming up, its
	// demotion from the active view). Hearsay (a Shuffle naming it
	// again) does not refresh it.
	seen time.Time
	// failures counts consecutive failed attempts to reach the node.
	failures int
	// retryAt is the earliest time the node may be asked again.
	retryAt time.Time
}

// request is an outstanding Neighbor request to a passive node.
type request struct {
	node string
	// sent is set once the link came up and the Neighbor went out.
	sent bool
	// high records the priority of the Neighbor sent.
	high bool
	// tick is the Tick count when the request was made, and sentTick
	// when the Neighbor went out; a request still unanswered two Ticks
	// after sentTick counts as a failure.
	tick, sentTick uint64
	// overdue: the link is still opening two Ticks after the request.
	// The request no longer holds an active slot (refill may ask another
	// node meanwhile) but is kept: opening the link ends in LinkUp or
	// LinkDown however long the connect takes, and a link that comes up
	// while a slot is free still gets its Neighbor.
	overdue bool
}

// State is the HyParView state of one node. It is not safe for
// concurrent use: one owner (the membership actor) calls its methods.
type State struct {
	cfg Config
	rng *rand.Rand

	active  []string
	passive []passiveEntry
	pending []request

	// shuffleSent holds the ids of our latest Shuffle; they are the
	// first to be evicted when its reply is merged.
	shuffleSent []string
	ticks       uint64
	left        bool
}

// New returns the state of a node that has not joined yet. It has no
// side effects.
func New(cfg Config) (*State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &State{cfg: cfg, rng: cfg.Rand}, nil
}

// Self returns this node's name.
func (s *State) Self() string { return s.cfg.Self }

// ActiveView returns a sorted copy of the active view.
func (s *State) ActiveView() []string {
	v := slices.Clone(s.active)
	slices.Sort(v)
	return v
}

// PassiveView returns a sorted copy of the passive view.
func (s *State) PassiveView() []string {
	v := make([]string, len(s.passive))
	for i, e := range s.passive {
		v[i] = e.node
	}
	slices.Sort(v)
	return v
}

// Join starts joining the overlay through contact: the contact enters
// the active view at once and receives a Join. Calling Join again (for
// instance after Leave, or when the active view stayed empty) rejoins.
func (s *State) Join(contact string, now time.Time) Output {
	var out Output
	if contact == "" || contact == s.cfg.Self {
		return out
	}
	s.left = false
	if !s.isActive(contact) {
		s.addActive(&out, contact, ReasonJoin, now)
	}
	out.send(contact, Message{Type: Join, From: s.cfg.Self})
	return out
}

// Step handles one received message. Messages without a sender, from
// this node itself, or of an unknown type are ignored.
func (s *State) Step(msg Message, now time.Time) Output {
	var out Output
	from := msg.From
	if from == "" || from == s.cfg.Self {
		return out
	}
	if s.left {
		s.stepLeft(&out, msg)
		return out
	}
	s.touch(from, now)
	switch msg.Type {
	case Join:
		s.onJoin(&out, from, now)
	case ForwardJoin:
		s.onForwardJoin(&out, msg, now)
	case Neighbor:
		s.onNeighbor(&out, from, msg.HighPriority, now)
	case NeighborReply:
		s.onNeighborReply(&out, from, msg.Accepted, now)
	case Disconnect:
		s.onDisconnect(&out, from, msg.Leaving, now)
	case Shuffle:
		s.onShuffle(&out, msg, now)
	case ShuffleReply:
		s.merge(msg.Nodes, s.shuffleSent, now)
	}
	return out
}

// stepLeft answers messages reaching a node that left: a Neighbor is
// refused, anything that assumes a link is told we are gone.
func (s *State) stepLeft(out *Output, msg Message) {
	switch msg.Type {
	case Neighbor:
		out.send(msg.From, Message{Type: NeighborReply, From: s.cfg.Self})
	case Join, ForwardJoin, Shuffle:
		out.send(msg.From, Message{Type: Disconnect, From: s.cfg.Self, Leaving: true})
	case NeighborReply:
		if msg.Accepted {
			out.send(msg.From, Message{Type: Disconnect, From: s.cfg.Self, Leaving: true})
		}
	}
}

// LinkUp reports that the link to node is usable. If a Neighbor
// request to node is waiting for the link, it is sent now.
func (s *State) LinkUp(node string, now time.Time) Output {
	var out Output
	if s.left {
		return out
	}
	s.touch(node, now)
	i := s.pendingIndex(node)
	if i < 0 || s.pending[i].sent {
		return out
	}
	if s.pending[i].overdue && len(s.active)+s.slotsAsked() >= s.cfg.ActiveSize {
		// Other requests took its slot meanwhile.
		s.pending = slices.Delete(s.pending, i, i+1)
		out.close(node)
		return out
	}
	high := len(s.active) == 0
	for _, r := range s.pending {
		if r.sent && r.high {
			high = false // one high-priority request at a time
		}
	}
	s.pending[i].sent = true
	s.pending[i].overdue = false
	s.pending[i].high = high
	s.pending[i].sentTick = s.ticks
	out.send(node, Message{Type: Neighbor, From: s.cfg.Self, HighPriority: high})
	return out
}

// LinkDown reports that the link to node failed or closed. An active
// peer is dropped (not kept in the passive view) and replaced from the
// passive view at once; a pending Neighbor request counts as a failed
// attempt. For any other node LinkDown is ignored.
func (s *State) LinkDown(node string, now time.Time) Output {
	var out Output
	if s.left {
		return out
	}
	switch {
	case s.isActive(node):
		s.active = without(s.active, node)
		out.event(PeerDown, node, ReasonFailed)
	case s.pendingIndex(node) >= 0:
		s.removePending(node)
		s.recordFailure(node, now)
	default:
		return out
	}
	s.refill(&out, now)
	return out
}

// Tick runs one membership round: it ages the passive view, expires
// Neighbor requests sent two Ticks ago and still unanswered, lets
// requests whose link is still opening after two Ticks give up their
// slot, refills the active view from the passive view, and starts one
// Shuffle. The actor calls it every shuffle period
// (DefaultShufflePeriod).
func (s *State) Tick(now time.Time) Output {
	var out Output
	if s.left {
		return out
	}
	s.ticks++
	s.passive = slices.DeleteFunc(s.passive, func(e passiveEntry) bool {
		return now.Sub(e.seen) > s.cfg.PassiveMaxAge
	})
	for i := 0; i < len(s.pending); {
		r := s.pending[i]
		if r.sent && s.ticks-r.sentTick >= 2 {
			s.pending = slices.Delete(s.pending, i, i+1)
			s.recordFailure(r.node, now)
			out.close(r.node)
			continue
		}
		if !r.sent && s.ticks-r.tick >= 2 {
			s.pending[i].overdue = true
		}
		i++
	}
	s.refill(&out, now)
	s.shuffle(&out)
	return out
}

// Leave disconnects from every active peer and stops taking part until
// the next Join. The passive view is kept for a later rejoin.
func (s *State) Leave(now time.Time) Output {
	var out Output
	if s.left {
		return out
	}
	for _, p := range s.active {
		out.send(p, Message{Type: Disconnect, From: s.cfg.Self, Leaving: true})
		out.close(p)
		out.event(PeerDown, p, ReasonLeave)
	}
	for _, r := range s.pending {
		out.close(r.node)
	}
	s.active = nil
	s.pending = nil
	s.shuffleSent = nil
	s.left = true
	return out
}

func (s *State) onJoin(out *Output, joiner string, now time.Time) {
	if !s.isActive(joiner) {
		s.addActive(out, joiner, ReasonJoin, now)
	}
	for _, p := range s.active {
		if p != joiner {
			out.send(p, Message{Type: ForwardJoin, From: s.cfg.Self, Node: joiner, TTL: s.cfg.ActiveRandomWalkLength})
		}
	}
}

func (s *State) onForwardJoin(out *Output, msg Message, now time.Time) {
	joiner := msg.Node
	if joiner == "" || joiner == s.cfg.Self {
		return
	}
	s.requireActiveSender(out, msg.From)
	if s.isActive(joiner) {
		return // already neighbours: the walk ends here
	}
	ttl := clamp(msg.TTL, 0, s.cfg.ActiveRandomWalkLength)
	next := s.randomActive(msg.From, joiner)
	if ttl == 0 || len(s.active) <= 1 || next == "" {
		s.addActive(out, joiner, ReasonForwardJoin, now)
		// The joiner learns of the new link through a high-priority
		// Neighbor, which it always accepts: the add stays symmetric.
		out.send(joiner, Message{Type: Neighbor, From: s.cfg.Self, HighPriority: true})
		return
	}
	if ttl == s.cfg.PassiveRandomWalkLength {
		s.addPassive(joiner, now)
	}
	out.send(next, Message{Type: ForwardJoin, From: s.cfg.Self, Node: joiner, TTL: ttl - 1})
}

func (s *State) onNeighbor(out *Output, from string, high bool, now time.Time) {
	if s.isActive(from) {
		out.send(from, Message{Type: NeighborReply, From: s.cfg.Self, Accepted: true})
		return
	}
	if high || len(s.active) < s.cfg.ActiveSize {
		s.addActive(out, from, ReasonNeighbor, now)
		out.send(from, Message{Type: NeighborReply, From: s.cfg.Self, Accepted: true})
		return
	}
	out.send(from, Message{Type: NeighborReply, From: s.cfg.Self, Accepted: false})
}

func (s *State) onNeighborReply(out *Output, from string, accepted bool, now time.Time) {
	if s.isActive(from) {
		// Our request crossed one of theirs, or a ForwardJoin made us
		// neighbours already. A refusal here is stale: the peer's later
		// messages (a Disconnect) settle the link.
		return
	}
	wasPending := s.pendingIndex(from) >= 0
	s.removePending(from)
	// asked: the reply answers a Neighbor of ours. A request that expired
	// unanswered leaves its node in the passive view, so a late answer
	// still counts: the peer already holds us, and a free slot takes it
	// rather than telling it to let go.
	asked := wasPending || s.passiveIndex(from) >= 0
	switch {
	case accepted && asked && len(s.active) < s.cfg.ActiveSize:
		s.addActive(out, from, ReasonNeighbor, now)
	case accepted:
		// No room any more, or an answer to nothing we asked: the peer
		// holds us, so tell it we do not hold it.
		out.send(from, Message{Type: Disconnect, From: s.cfg.Self})
		out.close(from)
	case wasPending:
		if i := s.passiveIndex(from); i >= 0 {
			s.passive[i].retryAt = now.Add(s.cfg.BackoffMin)
		}
		out.close(from)
		s.refill(out, now)
	}
}

func (s *State) onDisconnect(out *Output, from string, leaving bool, now time.Time) {
	if !s.isActive(from) {
		if leaving {
			s.removePassive(from)
		}
		// A pending request stays pending: the reply is still coming.
		return
	}
	s.active = without(s.active, from)
	out.close(from)
	if leaving {
		out.event(PeerDown, from, ReasonLeft)
	} else {
		s.addPassive(from, now)
		if i := s.passiveIndex(from); i >= 0 {
			// It just dropped us: ask others first.
			s.passive[i].retryAt = now.Add(s.cfg.BackoffMin)
		}
		out.event(PeerDown, from, ReasonDisconnected)
	}
	// Replace the lost link at once rather than at the next Tick: a node
	// evicted while joins pour in would otherwise drift towards an
	// island (see doc.go).
	s.refill(out, now)
}

func (s *State) onShuffle(out *Output, msg Message, now time.Time) {
	origin := msg.Node
	if origin == "" || origin == s.cfg.Self {
		return
	}
	s.requireActiveSender(out, msg.From)
	ttl := clamp(msg.TTL, 0, s.cfg.ShuffleTTL)
	if ttl > 0 && len(s.active) > 1 {
		if next := s.randomActive(msg.From, origin); next != "" {
			fwd := msg
			fwd.From = s.cfg.Self
			fwd.TTL = ttl - 1
			fwd.Nodes = slices.Clone(msg.Nodes)
			out.send(next, fwd)
			return
		}
	}
	nodes := s.capShuffle(msg.Nodes)
	reply := s.sample(s.shareablePassive(origin), len(nodes))
	out.send(origin, Message{Type: ShuffleReply, From: s.cfg.Self, Node: origin, Nodes: reply})
	s.merge(nodes, reply, now)
}

// requireActiveSender answers a message that only travels over active
// links (ForwardJoin, Shuffle) from a node we do not hold with a
// Disconnect, so a one-sided link cannot survive.
func (s *State) requireActiveSender(out *Output, from string) {
	if !s.isActive(from) {
		out.send(from, Message{Type: Disconnect, From: s.cfg.Self})
	}
}

// shuffle starts a Shuffle walk towards a random active peer.
func (s *State) shuffle(out *Output) {
	target := s.randomActive()
	if target == "" {
		return
	}
	others := make([]string, 0, len(s.active))
	for _, p := range s.active {
		if p != target {
			others = append(others, p)
		}
	}
	nodes := []string{s.cfg.Self}
	nodes = append(nodes, s.sample(others, s.cfg.ShuffleActive)...)
	nodes = append(nodes, s.sample(s.shareablePassive(""), s.cfg.ShufflePassive)...)
	s.shuffleSent = nodes[1:]
	out.send(target, Message{Type: Shuffle, From: s.cfg.Self, Node: s.cfg.Self, TTL: s.cfg.ShuffleTTL, Nodes: slices.Clone(nodes)})
}

// shareablePassive lists the passive ids worth handing out in a
// shuffle: not except, and not nodes we failed to reach since we last
// heard from them (spreading those only spreads dead ids).
func (s *State) shareablePassive(except string) []string {
	ids := make([]string, 0, len(s.passive))
	for _, e := range s.passive {
		if e.node != except && e.failures == 0 {
			ids = append(ids, e.node)
		}
	}
	return ids
}

// merge adds received ids to the passive view. When it is full, ids we
// sent in the same exchange go first, then random entries.
func (s *State) merge(nodes, sent []string, now time.Time) {
	sent = slices.Clone(sent)
	for _, n := range s.capShuffle(nodes) {
		if n == "" || n == s.cfg.Self || s.isActive(n) || s.passiveIndex(n) >= 0 || s.pendingIndex(n) >= 0 {
			continue
		}
		if len(s.passive) >= s.cfg.PassiveSize {
			victim := -1
			for len(sent) > 0 && victim < 0 {
				victim = s.passiveIndex(sent[0])
				sent = sent[1:]
			}
			if victim < 0 {
				victim = s.rng.IntN(len(s.passive))
			}
			s.passive = slices.Delete(s.passive, victim, victim+1)
		}
		s.passive = append(s.passive, passiveEntry{node: n, seen: now})
	}
}

// capShuffle bounds how many ids of a received sample are looked at.
func (s *State) capShuffle(nodes []string) []string {
	max := 1 + s.cfg.ShuffleActive + s.cfg.ShufflePassive
	if len(nodes) > max {
		return nodes[:max]
	}
	return nodes
}

// refill asks random eligible passive nodes to fill the free active
// slots: for each, a link is opened and the Neighbor goes out on LinkUp.
func (s *State) refill(out *Output, now time.Time) {
	for len(s.active)+s.slotsAsked() < s.cfg.ActiveSize {
		candidates := make([]int, 0, len(s.passive))
		for i, e := range s.passive {
			if !e.retryAt.After(now) && s.pendingIndex(e.node) < 0 {
				candidates = append(candidates, i)
			}
		}
		if len(candidates) == 0 {
			return
		}
		e := s.passive[candidates[s.rng.IntN(len(candidates))]]
		s.pending = append(s.pending, request{node: e.node, tick: s.ticks})
		out.open(e.node)
	}
}

// addActive puts node in the active view, evicting a random peer if the
// view is full. node must not be self or already active.
func (s *State) addActive(out *Output, node string, reason Reason, now time.Time) {
	s.removePassive(node)
	s.removePending(node)
	if len(s.active) >= s.cfg.ActiveSize {
		victim := s.active[s.rng.IntN(len(s.active))]
		s.active = without(s.active, victim)
		out.send(victim, Message{Type: Disconnect, From: s.cfg.Self})
		out.close(victim)
		out.event(PeerDown, victim, ReasonEvicted)
		s.addPassive(victim, now)
	}
	s.active = append(s.active, node)
	out.open(node)
	out.event(PeerUp, node, reason)
}

// addPassive inserts node (or refreshes it), evicting a random entry if
// the view is full.
func (s *State) addPassive(node string, now time.Time) {
	if node == s.cfg.Self || s.isActive(node) {
		return
	}
	if i := s.passiveIndex(node); i >= 0 {
		s.passive[i].seen = now
		return
	}
	if len(s.passive) >= s.cfg.PassiveSize {
		victim := s.rng.IntN(len(s.passive))
		s.passive = slices.Delete(s.passive, victim, victim+1)
	}
	s.passive = append(s.passive, passiveEntry{node: node, seen: now})
}

// touch records direct evidence that node is alive.
func (s *State) touch(node string, now time.Time) {
	if i := s.passiveIndex(node); i >= 0 {
		s.passive[i].seen = now
		s.passive[i].failures = 0
	}
}

// recordFailure counts a failed attempt to reach a passive node and
// sets its backoff, or drops it after MaxFailures in a row.
func (s *State) recordFailure(node string, now time.Time) {
	i := s.passiveIndex(node)
	if i < 0 {
		return
	}
	e := &s.passive[i]
	e.failures++
	if e.failures >= s.cfg.MaxFailures {
		s.passive = slices.Delete(s.passive, i, i+1)
		return
	}
	e.retryAt = now.Add(s.backoff(e.failures))
}

// backoff is BackoffMin doubled for each failure after the first,
// capped at BackoffMax.
func (s *State) backoff(failures int) time.Duration {
	d := s.cfg.BackoffMin
	for i := 1; i < failures && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.BackoffMax)
}

// randomActive picks a random active peer other than the excluded ones,
// or "" if there is none.
func (s *State) randomActive(exclude ...string) string {
	candidates := make([]string, 0, len(s.active))
	for _, p := range s.active {
		if !contains(exclude, p) {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return ""
	}
	return candidates[s.rng.IntN(len(candidates))]
}

// sample returns up to k distinct random elements of list, leaving list
// untouched.
func (s *State) sample(list []string, k int) []string {
	c := slices.Clone(list)
	k = min(k, len(c))
	for i := 0; i < k; i++ {
		j := i + s.rng.IntN(len(c)-i)
		c[i], c[j] = c[j], c[i]
	}
	return c[:k]
}

func (s *State) isActive(node string) bool { return contains(s.active, node) }

func (s *State) passiveIndex(node string) int {
	for i, e := range s.passive {
		if e.node == node {
			return i
		}
	}
	return -1
}

func (s *State) removePassive(node string) {
	if i := s.passiveIndex(node); i >= 0 {
		s.passive = slices.Delete(s.passive, i, i+1)
	}
}

// slotsAsked counts the requests holding an active slot: all but the
// overdue ones.
func (s *State) slotsAsked() int {
	n := 0
	for _, r := range s.pending {
		if !r.overdue {
			n++
		}
	}
	return n
}

func (s *State) pendingIndex(node string) int {
	for i, r := range s.pending {
		if r.node == node {
			return i
		}
	}
	return -1
}

func (s *State) removePending(node string) {
	if i := s.pendingIndex(node); i >= 0 {
		s.pending = slices.Delete(s.pending, i, i+1)
	}
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }
