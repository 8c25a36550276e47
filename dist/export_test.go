package dist

import "github.com/asynkron/protoactor-go/actor"

// EndpointRetired reports whether p, a Process the address resolver
// returned, is an endpoint that has been retired.
func EndpointRetired(p actor.Process) bool {
	ep, ok := p.(*endpoint)
	return ok && ep.retired.Load()
}

// LearnedDialFailed notes a failed dial to node's learned addr, as dial
// does.
func LearnedDialFailed(l *LearnedAddrs, node, addr string) { l.dialFailed(node, addr) }
