package membership

// This file owns the membership actor's reconnection to lost nodes: the
// bounded list of nodes that dropped out of this node's reach, the
// jittered ReconnectPeriod timer, and the join through a lost node (or a
// contact) that answers, which re-merges the halves of a healed
// partition. actor.go and groups_actor.go call in where a node is lost
// (an active peer's session lost, a heartbeat that stood still) and where
// a connect answers.

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
)

// reconnectTick starts one reconnect attempt.
type reconnectTick struct{ gen uint64 }

func (a *membershipActor) reconnectStart() {
	if a.cfg.ReconnectPeriod > 0 {
		a.armReconnect()
	}
}

func (a *membershipActor) reconnectShutdown() {
	a.reconnectGen++
	if a.reconnectTimer != nil {
		a.reconnectTimer.Stop()
	}
}

// armReconnect arms the next attempt within ±50 % of ReconnectPeriod, so
// the nodes of a cluster do not dial in step.
func (a *membershipActor) armReconnect() {
	p := a.cfg.ReconnectPeriod
	d := p/2 + time.Duration(a.rng.Int64N(int64(p))) + 1
	a.reconnectGen++
	gen, system, pid := a.reconnectGen, a.m.system, a.pid
	a.reconnectTimer = time.AfterFunc(d, func() { system.Root.Send(pid, &reconnectTick{gen: gen}) })
}

// lose remembers node as lost (again: the time is refreshed). When the
// list is full the node lost longest ago is forgotten.
func (a *membershipActor) lose(node string) {
	if a.cfg.ReconnectPeriod < 0 || node == a.self || node == "" {
		return
	}
	if _, ok := a.lost[node]; !ok && len(a.lost) >= MaxLostNodes {
		oldest := ""
		for n, since := range a.lost {
			if oldest == "" || since.Before(a.lost[oldest]) || (since.Equal(a.lost[oldest]) && n < oldest) {
				oldest = n
			}
		}
		delete(a.lost, oldest)
	}
	a.lost[node] = a.now()
}

// hasNews reports whether node is reachable through the overlay as far
// as this node knows: its group state is held, up and not suspected (its
// heartbeat still rises). Such a node is in this node's part of the
// overlay, and joining through it would only churn the views.
func (a *membershipActor) hasNews(node string) bool {
	st := a.reg.states[node]
	return st != nil && !st.down && !st.suspected
}

// mayReconnect reports whether node is worth a reconnect now: not an
// active peer (announced or awaited), not being linked by the protocol,
// and without news through the overlay.
func (a *membershipActor) mayReconnect(node string) bool {
	return node != a.self && !a.announced[node] && !a.awaiting[node] && !a.opening[node] &&
		!slices.Contains(a.state.ActiveView(), node) && !a.hasNews(node)
}

// reconnectCandidates expires lost nodes older than TombstoneTTL and
// lists, sorted, the lost nodes and contact nodes worth a reconnect.
func (a *membershipActor) reconnectCandidates(now time.Time) []string {
	var out []string
	for node, since := range a.lost {
		if now.Sub(since) > a.cfg.TombstoneTTL {
			delete(a.lost, node)
			continue
		}
		if a.mayReconnect(node) {
			out = append(out, node)
		}
	}
	// A contact counts once it was heard of and is now down or
	// suspected: one never heard of is what a starting node's join is
	// for (and rejoining through every such contact at start only churned
	// a forming overlay), and an isolated node goes back to its contacts
	// anyway.
	for _, c := range a.cfg.ContactNodes {
		if !slices.Contains(out, c) && a.reg.states[c] != nil && a.mayReconnect(c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// onReconnectTick tries one candidate: a node whose session is up is
// joined through at once, any other is connected first.
func (a *membershipActor) onReconnectTick(ctx actor.Context) {
	a.armReconnect()
	if a.left || a.join != nil {
		return
	}
	candidates := a.reconnectCandidates(a.now())
	if len(candidates) == 0 {
		return
	}
	node := candidates[a.rng.IntN(len(candidates))]
	a.stats.Reconnects++
	if a.live[node] {
		a.rejoinThrough(ctx, node)
		return
	}
	a.log.Debug("reconnecting to a lost node", "peer", node)
	a.reconnecting = node
	ctx.Request(a.distPID, &dist.Connect{Node: node})
}

// reconnected takes the answer to a reconnect's Connect.
func (a *membershipActor) reconnected(ctx actor.Context, msg *dist.ConnectResult) {
	if msg.Node != a.reconnecting || msg.Node == "" {
		return
	}
	a.reconnecting = ""
	if msg.Err != nil {
		a.log.Debug("lost node still unreachable", "peer", msg.Node, "err", msg.Err)
		return
	}
	a.rejoinThrough(ctx, msg.Node)
}

// rejoinThrough joins through node, which answered while this node has
// no news of it: node takes this node into its active view and forwards
// the join on a random walk through its own part of the overlay, and the
// two compare group states when they become neighbours.
func (a *membershipActor) rejoinThrough(ctx actor.Context, node string) {
	if a.left || a.stopped || a.join != nil || !a.mayReconnect(node) {
		return
	}
	a.stats.Rejoins++
	a.log.Info("rejoining through a lost node", "peer", node)
	a.startJoin(ctx, node, nil, false)
}
