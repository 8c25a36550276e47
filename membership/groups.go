package membership

// This file owns the process-group and name registry of a node: every
// node's published share (its own entry is authoritative; the others are
// copies), the merge rules, the Lamport clock of name claims and the
// read-only snapshot readers use. It does no I/O; groups_actor.go drives
// it from the membership actor.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// Limits on what a received node state may hold; a state beyond them is
// dropped whole (ErrBadMessage).
const (
	maxGroupNameLen  = 255
	maxGroupsPerNode = 65536
	maxIDsPerNode    = 1 << 20
)

// nameClaim is a node's registration of a name: the local PID id and
// the Lamport stamp of the registration.
type nameClaim struct {
	id    string
	stamp uint64
}

// nodeState is one node's share: its groups and names at a version.
type nodeState struct {
	version uint64
	down    bool
	// downAt is when this node learned the down state (tombstone expiry).
	downAt time.Time
	groups map[string][]string // group -> sorted PID ids
	names  map[string]nameClaim
	// hb is the node's latest heartbeat known here, hbAt when it last
	// rose (this node's clock).
	hb   uint64
	hbAt time.Time
	// suspected: the heartbeat stood still for HeartbeatTimeout. A local
	// judgment: the state is left out of the view but kept, spread as it
	// is, and taken back into the view when the heartbeat rises again or
	// a newer state comes.
	suspected bool
}

func (s *nodeState) clone() *nodeState {
	c := &nodeState{version: s.version, down: s.down, downAt: s.downAt, hb: s.hb, hbAt: s.hbAt,
		groups: make(map[string][]string, len(s.groups)), names: make(map[string]nameClaim, len(s.names))}
	for g, ids := range s.groups {
		c.groups[g] = slices.Clone(ids)
	}
	for n, cl := range s.names {
		c.names[n] = cl
	}
	return c
}

// newer reports whether a replaces b: a higher version, or the same
// version marked down.
func newer(aVersion uint64, aDown bool, b *nodeState) bool {
	if b == nil {
		return true
	}
	return aVersion > b.version || (aVersion == b.version && aDown && !b.down)
}

// registry holds every known node's state. The own entry (self) is
// changed only by local operations; the others only by merge.
type registry struct {
	self   string
	states map[string]*nodeState
	// clock is the Lamport clock of name claims: above every stamp seen.
	clock uint64
}

// newRegistry starts with an empty own state at version: a value that
// grows with each start of the node (its start time in nanoseconds), so
// a restarted node's state replaces its earlier incarnation's.
func newRegistry(self string, version uint64) *registry {
	return &registry{self: self, states: map[string]*nodeState{
		self: {version: version, groups: map[string][]string{}, names: map[string]nameClaim{}},
	}}
}

func (r *registry) own() *nodeState { return r.states[r.self] }

// bump marks a change of the own state.
func (r *registry) bump() { r.own().version++ }

// join adds ids to group; it reports whether anything changed.
func (r *registry) join(group string, ids []string) bool {
	own := r.own()
	cur := own.groups[group]
	changed := false
	for _, id := range ids {
		if i, found := slices.BinarySearch(cur, id); !found {
			cur = slices.Insert(cur, i, id)
			changed = true
		}
	}
	if changed {
		own.groups[group] = cur
		r.bump()
	}
	return changed
}

// leave removes ids from group; it reports whether anything changed.
func (r *registry) leave(group string, ids []string) bool {
	own := r.own()
	cur := own.groups[group]
	n := len(cur)
	cur = slices.DeleteFunc(cur, func(id string) bool { return slices.Contains(ids, id) })
	if len(cur) == n {
		return false
	}
	if len(cur) == 0 {
		delete(own.groups, group)
	} else {
		own.groups[group] = cur
	}
	r.bump()
	return true
}

// drop removes a local id from every group and name (the actor stopped).
func (r *registry) drop(id string) bool {
	own := r.own()
	changed := false
	for g, ids := range own.groups {
		if i, found := slices.BinarySearch(ids, id); found {
			ids = slices.Delete(ids, i, i+1)
			changed = true
			if len(ids) == 0 {
				delete(own.groups, g)
			} else {
				own.groups[g] = ids
			}
		}
	}
	for n, cl := range own.names {
		if cl.id == id {
			delete(own.names, n)
			changed = true
		}
	}
	if changed {
		r.bump()
	}
	return changed
}

// holds reports whether a local id is in any group or holds any name.
func (r *registry) holds(id string) bool {
	own := r.own()
	for _, ids := range own.groups {
		if _, found := slices.BinarySearch(ids, id); found {
			return true
		}
	}
	for _, cl := range own.names {
		if cl.id == id {
			return true
		}
	}
	return false
}

// claim registers name for the local id with the next Lamport stamp.
// The caller checked the name is free.
func (r *registry) claim(name, id string) {
	r.clock++
	r.own().names[name] = nameClaim{id: id, stamp: r.clock}
	r.bump()
}

// unclaim drops the own claim of name; it reports whether there was one.
func (r *registry) unclaim(name string) bool {
	if _, ok := r.own().names[name]; !ok {
		return false
	}
	delete(r.own().names, name)
	r.bump()
	return true
}

// setDown marks the own state down (the node leaves) or up again (it
// rejoins), as a new version.
func (r *registry) setDown(down bool) {
	own := r.own()
	if own.down != down {
		own.down = down
		r.bump()
	}
}

// markDown replaces node's state with a down state at the same version
// (a tombstone): its groups and names are gone. It reports whether
// anything changed. The own node is never marked down this way.
func (r *registry) markDown(node string, now time.Time) bool {
	cur := r.states[node]
	if node == r.self || cur == nil || cur.down {
		return false
	}
	r.states[node] = &nodeState{version: cur.version, down: true, downAt: now, hb: cur.hb, hbAt: cur.hbAt}
	return true
}

// heartbeat raises the own heartbeat to now.
func (r *registry) heartbeat(now time.Time) {
	own := r.own()
	own.hb = max(own.hb+1, uint64(now.UnixNano()))
	own.hbAt = now
}

// observe takes the heartbeats of a peer's digest. It reports whether a
// suspected node came back (its heartbeat rose).
func (r *registry) observe(versions []*caskpb.GroupVersion, now time.Time) (back bool) {
	for _, v := range versions {
		if st := r.states[v.GetNode()]; st != nil && v.GetNode() != r.self && v.GetHeartbeat() > st.hb {
			st.hb, st.hbAt = v.GetHeartbeat(), now
			if st.suspected {
				st.suspected, back = false, true
			}
		}
	}
	return back
}

// suspect takes out of the view every live node whose heartbeat has not
// risen for timeout and that alive does not vouch for (a node with a
// live session is not suspected), and returns them sorted.
func (r *registry) suspect(now time.Time, timeout time.Duration, alive func(string) bool) []string {
	var out []string
	for node, st := range r.states {
		if node == r.self || st.down || st.suspected {
			continue
		}
		if alive(node) {
			st.hbAt = now
			continue
		}
		if now.Sub(st.hbAt) > timeout {
			st.suspected = true
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out
}

// merge takes a received state of node. It returns changed when the
// state replaced the one held, and refute when the state is about this
// node and claims a newer version (a tombstone from a peer that lost its
// session, or the state of an earlier incarnation): the own version then
// jumps past it, and the caller must publish the own state.
func (r *registry) merge(node string, st *nodeState, now time.Time) (changed, refute bool) {
	for _, cl := range st.names {
		r.clock = max(r.clock, cl.stamp)
	}
	if node == r.self {
		own := r.own()
		if newer(st.version, st.down, own) {
			own.version = st.version + 1
			return false, true
		}
		return false, false
	}
	if !newer(st.version, st.down, r.states[node]) {
		return false, false
	}
	if st.down {
		st.downAt = now
		st.groups, st.names = nil, nil
	}
	// Heartbeats are not part of a state: keep what is known, and count
	// a new state as a sign of life.
	if cur := r.states[node]; cur != nil {
		st.hb = cur.hb
	}
	st.hbAt = now
	r.states[node] = st
	return true, false
}

// expire drops tombstones older than ttl.
func (r *registry) expire(now time.Time, ttl time.Duration) {
	for node, st := range r.states {
		if node != r.self && st.down && now.Sub(st.downAt) > ttl {
			delete(r.states, node)
		}
	}
}

// describe lists every state held as node@version, with d for down and
// s for suspected (diagnostics).
func (r *registry) describe() string {
	nodes := make([]string, 0, len(r.states))
	for node := range r.states {
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	var b strings.Builder
	for _, node := range nodes {
		st := r.states[node]
		fmt.Fprintf(&b, " %s@%d", node, st.version)
		if st.down {
			b.WriteString("d")
		}
		if st.suspected {
			b.WriteString("s")
		}
	}
	return b.String()
}

// digest lists the version of every state held, sorted by node.
func (r *registry) digest() []*caskpb.GroupVersion {
	out := make([]*caskpb.GroupVersion, 0, len(r.states))
	for node, st := range r.states {
		out = append(out, &caskpb.GroupVersion{Node: node, Version: st.version, Down: st.down, Heartbeat: st.hb})
	}
	slices.SortFunc(out, func(a, b *caskpb.GroupVersion) int { return cmp.Compare(a.Node, b.Node) })
	return out
}

// compare reads a peer's digest: push lists the nodes whose state this
// node holds newer (or the peer lacks), sorted; behind says the peer
// holds a state newer than this node's (or one it lacks); refute says
// the peer holds a newer state about this node itself.
func (r *registry) compare(versions []*caskpb.GroupVersion) (push []string, behind, refute bool) {
	theirs := make(map[string]*caskpb.GroupVersion, len(versions))
	for _, v := range versions {
		theirs[v.GetNode()] = v
	}
	for node, st := range r.states {
		v := theirs[node]
		if v == nil || newer(st.version, st.down, &nodeState{version: v.GetVersion(), down: v.GetDown()}) {
			push = append(push, node)
		}
	}
	slices.Sort(push)
	for node, v := range theirs {
		if node == "" {
			continue
		}
		if node == r.self {
			if newer(v.GetVersion(), v.GetDown(), r.own()) {
				refute = true
			}
			continue
		}
		if newer(v.GetVersion(), v.GetDown(), r.states[node]) {
			behind = true
		}
	}
	return push, behind, refute
}

// encodeState is node's state in its wire form, sorted.
func (r *registry) encodeState(node string) *caskpb.GroupNodeState {
	st := r.states[node]
	p := &caskpb.GroupNodeState{Node: node, Version: st.version, Down: st.down}
	for g, ids := range st.groups {
		p.Groups = append(p.Groups, &caskpb.GroupMembers{Group: g, Ids: slices.Clone(ids)})
	}
	slices.SortFunc(p.Groups, func(a, b *caskpb.GroupMembers) int { return cmp.Compare(a.Group, b.Group) })
	for n, cl := range st.names {
		p.Names = append(p.Names, &caskpb.NameClaim{Name: n, Id: cl.id, Stamp: cl.stamp})
	}
	slices.SortFunc(p.Names, func(a, b *caskpb.NameClaim) int { return cmp.Compare(a.Name, b.Name) })
	return p
}

// errBadState: a received node state breaks a rule (no node, an empty
// or oversized group or name, an empty id, too many entries).
var errBadState = errors.New("bad group state")

// decodeState maps a received node state; it never panics. A down state
// carries no groups or names (any listed are ignored).
func decodeState(p *caskpb.GroupNodeState) (string, *nodeState, error) {
	node := p.GetNode()
	if node == "" {
		return "", nil, fmt.Errorf("%w: %w: no node", ErrBadMessage, errBadState)
	}
	st := &nodeState{version: p.GetVersion(), down: p.GetDown(), groups: map[string][]string{}, names: map[string]nameClaim{}}
	if st.down {
		return node, st, nil
	}
	if len(p.GetGroups()) > maxGroupsPerNode || len(p.GetNames()) > maxGroupsPerNode {
		return "", nil, fmt.Errorf("%w: %w: %s lists too many groups or names", ErrBadMessage, errBadState, node)
	}
	total := 0
	for _, g := range p.GetGroups() {
		name := g.GetGroup()
		if name == "" || len(name) > maxGroupNameLen {
			return "", nil, fmt.Errorf("%w: %w: %s: group name of %d bytes", ErrBadMessage, errBadState, node, len(name))
		}
		total += len(g.GetIds())
		if total > maxIDsPerNode {
			return "", nil, fmt.Errorf("%w: %w: %s lists too many members", ErrBadMessage, errBadState, node)
		}
		ids := slices.Clone(st.groups[name])
		for _, id := range g.GetIds() {
			if id == "" {
				return "", nil, fmt.Errorf("%w: %w: %s: empty id in %q", ErrBadMessage, errBadState, node, name)
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		st.groups[name] = slices.Compact(ids)
	}
	for _, n := range p.GetNames() {
		if n.GetName() == "" || len(n.GetName()) > maxGroupNameLen || n.GetId() == "" {
			return "", nil, fmt.Errorf("%w: %w: %s: bad name claim %q", ErrBadMessage, errBadState, node, n.GetName())
		}
		st.names[n.GetName()] = nameClaim{id: n.GetId(), stamp: n.GetStamp()}
	}
	return node, st, nil
}

// registryView is the read-only snapshot readers use (GroupMembers,
// Whereis): built by the actor after each change, never mutated.
type registryView struct {
	groups map[string][]*actor.PID // sorted by address, then id
	names  map[string]nameOwner
}

// nameOwner is the winning claim of a name.
type nameOwner struct {
	pid   *actor.PID
	node  string
	stamp uint64
}

// wins reports whether claim (stamp, node) beats o: the lower stamp,
// then the lower node name.
func (o nameOwner) beatenBy(stamp uint64, node string) bool {
	return stamp < o.stamp || (stamp == o.stamp && node < o.node)
}

// view builds the snapshot: members of every group over live states, and
// the winner of every claimed name.
func (r *registry) view() *registryView {
	v := &registryView{groups: map[string][]*actor.PID{}, names: map[string]nameOwner{}}
	for node, st := range r.states {
		if st.down || st.suspected {
			continue
		}
		for g, ids := range st.groups {
			for _, id := range ids {
				v.groups[g] = append(v.groups[g], actor.NewPID(node, id))
			}
		}
		for n, cl := range st.names {
			if cur, ok := v.names[n]; !ok || cur.beatenBy(cl.stamp, node) {
				v.names[n] = nameOwner{pid: actor.NewPID(node, cl.id), node: node, stamp: cl.stamp}
			}
		}
	}
	for _, pids := range v.groups {
		slices.SortFunc(pids, comparePID)
	}
	return v
}

func comparePID(a, b *actor.PID) int {
	if c := cmp.Compare(a.Address, b.Address); c != 0 {
		return c
	}
	return cmp.Compare(a.Id, b.Id)
}

// diffPIDs returns the PIDs of b not in a (joined) and of a not in b
// (left); both inputs are sorted by comparePID.
func diffPIDs(a, b []*actor.PID) (joined, left []*actor.PID) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && comparePID(a[i], b[j]) < 0):
			left = append(left, a[i])
			i++
		case i == len(a) || comparePID(a[i], b[j]) > 0:
			joined = append(joined, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return joined, left
}
