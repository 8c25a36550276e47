package dist

import "github.com/asynkron/protoactor-go/actor"

// EndpointRetired reports whether p, a Process the address resolver
// returned, is an endpoint that has been retired.
func EndpointRetired(p actor.Process) bool {
	ep, ok := p.(*endpoint)
	return ok && ep.retired.Load()
}

// WithoutStreamCredit makes m, before Start, announce no credit flow
// control of user streams, as an older build.
func WithoutStreamCredit(m *Manager) { m.withoutStreamCredit = true }

// WithoutLinks makes m, before Start, announce no links capability, as
// an older build.
func WithoutLinks(m *Manager) { m.withoutLinks = true }

// WithoutSessions makes m announce no CAPABILITY_SESSIONS, as a build
// before sessions (call before Start).
func WithoutSessions(m *Manager) { m.withoutSessions = true }

// OverrunCredit lets s write extra bytes past the credit its peer
// granted, as a misbehaving peer would.
func OverrunCredit(s *Stream, extra int) {
	s.smu.Lock()
	s.send.window += extra
	s.send.credit += extra
	s.smu.Unlock()
}

// LearnedDialFailed notes a failed dial to node's learned addr, as dial
// does.
func LearnedDialFailed(l *LearnedAddrs, node, addr string) { l.dialFailed(node, addr) }

// LinkState counts the entries of the link table of system's dist layer:
// local actors with links, peers with links, trapping actors.
func LinkState(system *actor.ActorSystem) (ends, nodes, traps int) {
	t := linksOf(system)
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.ends), len(t.nodes), len(t.traps)
}

// MinRemember is the shortest time a failure count is remembered after
// its delay ran out.
const MinRemember = minRemember

// PublishNodeEvent hands m's manager actor a node event as a controller
// would, for node, to be published to its monitors.
func PublishNodeEvent(m *Manager, node string, msg any) {
	m.system.Root.Send(m.pid, &nodeEvent{node: node, msg: msg})
}
