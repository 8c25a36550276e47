package plumtree

import (
	"slices"
	"time"
)

// received is one entry of the received-id cache.
type received struct {
	id      ID
	at      time.Time
	round   uint32
	payload []byte
}

// missing is an id heard of through IHave whose payload has not come.
type missing struct {
	id ID
	// announcers, oldest first: the nodes that announced it, with the
	// round they received it at. A Graft goes to the first one.
	announcers []Announcement // Announcement.ID.Origin holds the announcer
	deadline   time.Time
	// since is when the id was first announced (for expiry).
	since time.Time
}

// State is the Plumtree state of one node. It is not safe for concurrent
// use: one owner (the membership actor) calls its methods.
type State struct {
	cfg Config

	// eager and lazy partition the neighbours: payloads go to eager
	// peers, IHave announcements to lazy ones.
	eager []string
	lazy  []string

	seq uint64

	// cache holds received ids in arrival order; index maps an id to its
	// position offset by dropped (the count of entries evicted so far).
	cache   []received
	index   map[ID]uint64
	dropped uint64

	missing []*missing
	byID    map[ID]*missing

	// queued IHave announcements per lazy peer, in order of peers first
	// queued; flushAt is when they go out.
	queued  map[string][]Announcement
	qorder  []string
	flushAt time.Time
}

// New returns the state of a node with no neighbours. It has no side
// effects.
func New(cfg Config) (*State, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &State{
		cfg:    cfg,
		seq:    cfg.FirstSeq,
		index:  make(map[ID]uint64),
		byID:   make(map[ID]*missing),
		queued: make(map[string][]Announcement),
	}, nil
}

// Self returns this node's name.
func (s *State) Self() string { return s.cfg.Self }

// EagerPeers returns a sorted copy of the eager set (tree branches).
func (s *State) EagerPeers() []string { return sorted(s.eager) }

// LazyPeers returns a sorted copy of the lazy set.
func (s *State) LazyPeers() []string { return sorted(s.lazy) }

// CacheLen is the number of received ids remembered.
func (s *State) CacheLen() int { return len(s.cache) }

// MissingLen is the number of ids announced but not received.
func (s *State) MissingLen() int { return len(s.missing) }

// NeighborUp adds node to the eager set: a new neighbour starts as a
// tree branch, and the first duplicate over it prunes it.
func (s *State) NeighborUp(node string, now time.Time) Output {
	var out Output
	if node == "" || node == s.cfg.Self || slices.Contains(s.eager, node) {
		return out
	}
	s.lazy = without(s.lazy, node)
	s.eager = append(s.eager, node)
	s.expire(now)
	s.setDeadline(&out)
	return out
}

// NeighborDown removes node from both sets, forgets its announcements
// and drops IHaves queued for it.
func (s *State) NeighborDown(node string, now time.Time) Output {
	var out Output
	s.eager = without(s.eager, node)
	s.lazy = without(s.lazy, node)
	if _, ok := s.queued[node]; ok {
		delete(s.queued, node)
		s.qorder = without(s.qorder, node)
	}
	for _, m := range s.missing {
		m.announcers = slices.DeleteFunc(m.announcers, func(a Announcement) bool { return a.ID.Origin == node })
	}
	s.expire(now)
	s.setDeadline(&out)
	return out
}

// Broadcast starts a broadcast of payload from this node: it is sent to
// every eager peer and announced to every lazy one. The payload is not
// delivered to this node (the caller has it). It returns the new id.
func (s *State) Broadcast(payload []byte, now time.Time) (ID, Output) {
	var out Output
	s.expire(now)
	id := ID{Origin: s.cfg.Self, Seq: s.seq}
	s.seq++
	s.remember(id, 0, payload, now)
	s.push(&out, id, 0, payload, "", now)
	s.setDeadline(&out)
	return id, out
}

// Step handles one received message. Messages without a sender, from
// this node itself, or of an unknown type are ignored.
func (s *State) Step(msg Message, now time.Time) Output {
	var out Output
	from := msg.From
	if from == "" || from == s.cfg.Self {
		return out
	}
	s.expire(now)
	switch msg.Type {
	case Gossip:
		s.onGossip(&out, msg, now)
	case IHave:
		s.onIHave(msg, now)
	case Graft:
		s.onGraft(&out, msg)
	case Prune:
		s.toLazy(from)
	}
	s.setDeadline(&out)
	return out
}

// Tick runs the timers due at now: Grafts for missing ids whose wait is
// over, then the queued IHave batches. The actor calls it at the
// Deadline of an Output (earlier or extra calls are harmless).
func (s *State) Tick(now time.Time) Output {
	var out Output
	s.expire(now)
	grafts := map[string][]ID{}
	var order []string
	for _, m := range s.missing {
		if now.Before(m.deadline) || len(m.announcers) == 0 {
			continue
		}
		a := m.announcers[0]
		m.announcers = m.announcers[1:]
		m.deadline = now.Add(s.cfg.GraftRetry)
		peer := a.ID.Origin
		if _, ok := grafts[peer]; !ok {
			order = append(order, peer)
		}
		grafts[peer] = append(grafts[peer], m.id)
	}
	for _, peer := range order {
		// The announcer becomes a tree branch: the paper grafts the link
		// over which the missing payload is known to be available.
		s.toEager(peer)
		out.send(peer, Message{Type: Graft, From: s.cfg.Self, IDs: grafts[peer]})
	}
	if !s.flushAt.IsZero() && !now.Before(s.flushAt) {
		s.flush(&out)
	}
	s.setDeadline(&out)
	return out
}

func (s *State) onGossip(out *Output, msg Message, now time.Time) {
	from := msg.From
	if _, seen := s.index[msg.ID]; seen || msg.ID.Origin == s.cfg.Self {
		// Our own broadcasts count as seen even after the cache let them
		// go, so a late echo never comes back as new.
		// A duplicate: this link is redundant for the tree. The sender
		// is pruned even if it is already lazy here: it still holds us
		// as eager, or it would not have pushed the payload.
		s.toLazy(from)
		out.send(from, Message{Type: Prune, From: s.cfg.Self})
		return
	}
	if msg.ID.Origin == "" {
		return
	}
	round := msg.Round + 1
	s.forget(msg.ID)
	s.remember(msg.ID, round, msg.Payload, now)
	out.Deliver = append(out.Deliver, Delivery{ID: msg.ID, Payload: msg.Payload, Hops: round, From: from})
	if slices.Contains(s.lazy, from) {
		s.toEager(from)
	}
	s.push(out, msg.ID, round, msg.Payload, from, now)
}

func (s *State) onIHave(msg Message, now time.Time) {
	for _, a := range msg.IHave {
		if a.ID.Origin == "" || a.ID.Origin == s.cfg.Self {
			continue
		}
		if _, seen := s.index[a.ID]; seen {
			continue
		}
		m := s.byID[a.ID]
		if m == nil {
			if len(s.missing) >= s.cfg.MaxMissing {
				continue
			}
			m = &missing{id: a.ID, deadline: now.Add(s.cfg.GraftTimeout), since: now}
			s.missing = append(s.missing, m)
			s.byID[a.ID] = m
		}
		if len(m.announcers) >= s.cfg.MaxAnnouncers || slices.ContainsFunc(m.announcers, func(x Announcement) bool { return x.ID.Origin == msg.From }) {
			continue
		}
		m.announcers = append(m.announcers, Announcement{ID: ID{Origin: msg.From}, Round: a.Round})
	}
}

func (s *State) onGraft(out *Output, msg Message) {
	from := msg.From
	if slices.Contains(s.lazy, from) {
		s.toEager(from)
	}
	for _, id := range msg.IDs {
		i, ok := s.index[id]
		if !ok {
			continue
		}
		r := s.cache[i-s.dropped]
		out.send(from, Message{Type: Gossip, From: s.cfg.Self, ID: id, Round: r.round, Payload: r.payload})
	}
}

// push sends the payload to the eager peers and queues IHaves for the
// lazy ones, but for except (the peer it came from).
func (s *State) push(out *Output, id ID, round uint32, payload []byte, except string, now time.Time) {
	for _, p := range s.eager {
		if p != except {
			out.send(p, Message{Type: Gossip, From: s.cfg.Self, ID: id, Round: round, Payload: payload})
		}
	}
	for _, p := range s.lazy {
		if p == except {
			continue
		}
		if _, ok := s.queued[p]; !ok {
			s.qorder = append(s.qorder, p)
		}
		s.queued[p] = append(s.queued[p], Announcement{ID: id, Round: round})
		if s.flushAt.IsZero() {
			s.flushAt = now.Add(s.cfg.LazyDelay)
		}
		if len(s.queued[p]) >= s.cfg.MaxIHaveBatch {
			s.flushPeer(out, p)
		}
	}
}

// flush sends every queued IHave batch.
func (s *State) flush(out *Output) {
	for _, p := range slices.Clone(s.qorder) {
		s.flushPeer(out, p)
	}
	s.flushAt = time.Time{}
}

func (s *State) flushPeer(out *Output, p string) {
	batch := s.queued[p]
	delete(s.queued, p)
	s.qorder = without(s.qorder, p)
	if len(s.qorder) == 0 {
		s.flushAt = time.Time{}
	}
	if len(batch) > 0 {
		out.send(p, Message{Type: IHave, From: s.cfg.Self, IHave: batch})
	}
}

// remember adds id to the received cache, evicting the oldest entry when
// it is full.
func (s *State) remember(id ID, round uint32, payload []byte, now time.Time) {
	if _, ok := s.index[id]; ok {
		return
	}
	for len(s.cache) >= s.cfg.CacheSize && len(s.cache) > 0 {
		s.evictOldest()
	}
	s.index[id] = s.dropped + uint64(len(s.cache))
	s.cache = append(s.cache, received{id: id, at: now, round: round, payload: payload})
}

func (s *State) evictOldest() {
	delete(s.index, s.cache[0].id)
	s.cache[0] = received{}
	s.cache = s.cache[1:]
	s.dropped++
}

// forget drops id from the missing table (its payload arrived).
func (s *State) forget(id ID) {
	if m := s.byID[id]; m != nil {
		delete(s.byID, id)
		s.missing = slices.DeleteFunc(s.missing, func(x *missing) bool { return x == m })
	}
}

// expire drops received ids older than CacheTTL and missing ids that
// waited that long with nobody left to graft.
func (s *State) expire(now time.Time) {
	for len(s.cache) > 0 && now.Sub(s.cache[0].at) > s.cfg.CacheTTL {
		s.evictOldest()
	}
	if len(s.cache) == 0 && cap(s.cache) > 2*s.cfg.CacheSize {
		s.cache = nil // let a long-drained slice go
	}
	s.missing = slices.DeleteFunc(s.missing, func(m *missing) bool {
		if now.Sub(m.since) > s.cfg.CacheTTL {
			delete(s.byID, m.id)
			return true
		}
		return false
	})
}

// setDeadline reports the earliest timer: the IHave flush or a Graft.
func (s *State) setDeadline(out *Output) {
	d := s.flushAt
	for _, m := range s.missing {
		if len(m.announcers) > 0 && (d.IsZero() || m.deadline.Before(d)) {
			d = m.deadline
		}
	}
	out.Deadline = d
}

func (s *State) toLazy(p string) {
	if slices.Contains(s.eager, p) {
		s.eager = without(s.eager, p)
		s.lazy = append(s.lazy, p)
	}
}

func (s *State) toEager(p string) {
	if slices.Contains(s.lazy, p) {
		s.lazy = without(s.lazy, p)
		s.eager = append(s.eager, p)
	}
}

func without(list []string, s string) []string {
	if i := slices.Index(list, s); i >= 0 {
		return slices.Delete(list, i, i+1)
	}
	return list
}

func sorted(list []string) []string {
	c := slices.Clone(list)
	slices.Sort(c)
	return c
}
