// Remote spawn: kinds this node lets peers spawn, and the controller's
// half of the SpawnRequest / SpawnResponse exchange on the control stream.
//
// Ownership: kinds are guarded by Manager.kindsMu; pending spawns belong
// to the controller and are touched only from its Receive.

package dist

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// SpawnOption adds to a remote spawn (Manager.SpawnRemote,
// Node.SpawnRemote).
type SpawnOption func(*Spawn)

// SpawnLink links pid, an actor of this node, with the spawned actor
// before the spawned actor handles its first message (Erlang's
// spawn_link): no window where it runs unlinked. The spawned actor also
// gets the link-aware receiver middleware (see TrapExits). Without a
// name, the spawn is named by this node ("spawn$<node>$<incarnation>$<n>").
// If the session is lost before the answer, SpawnRemote fails with
// ErrConnectionLost and pid gets the link's noconnection exit: the actor
// may have been spawned.
func SpawnLink(pid *actor.PID) SpawnOption { return func(s *Spawn) { s.Link = pid } }

// SpawnMonitor makes pid, an actor of this node, watch the spawned actor
// from before the spawned actor handles its first message (Erlang's
// spawn_monitor): pid gets Terminated when it stops, or
// Terminated(AddressTerminated) when the session ends.
func SpawnMonitor(pid *actor.PID) SpawnOption { return func(s *Spawn) { s.Monitor = pid } }

// SpawnRemote spawns an actor of a kind registered on node, named name
// (empty: generated), with options such as SpawnLink and SpawnMonitor.
func (m *Manager) SpawnRemote(ctx context.Context, node, kind, name string, opts ...SpawnOption) (*actor.PID, error) {
	if err := m.checkPeer(node); err != nil {
		return nil, peerErr("spawn", node, err)
	}
	msg := &Spawn{Node: node, Kind: kind, Name: name}
	for _, o := range opts {
		o(msg)
	}
	res, err := m.request(ctx, msg)
	if err != nil {
		return nil, peerErr("spawn", node, err)
	}
	r := res.(*SpawnResult)
	return r.PID, r.Err
}

// KindOption adds to a kind's registration (RegisterKind).
type KindOption func(*kind)

// AllowSpawnBy limits who may spawn the kind to the named nodes; a spawn
// request from any other peer fails there with ErrSpawnNotAllowed.
// Without it, any admitted peer may (the default).
func AllowSpawnBy(nodes ...string) KindOption {
	return func(k *kind) {
		if k.allowed == nil {
			k.allowed = make(map[string]bool)
		}
		for _, n := range nodes {
			k.allowed[n] = true
		}
	}
}

// kind is one registered kind.
type kind struct {
	// props are the registered props with the link-aware receiver
	// middleware (linkMiddleware).
	props *actor.Props
	// allowed names the peers that may spawn it; nil: any admitted peer.
	allowed map[string]bool
}

// RegisterKind makes props spawnable by peers under kind; by default any
// admitted peer may spawn it, AllowSpawnBy narrows that.
func (m *Manager) RegisterKind(name string, props *actor.Props, opts ...KindOption) error {
	if name == "" || props == nil {
		return errors.New("dist: RegisterKind needs a kind name and props")
	}
	k := &kind{props: props.Clone(actor.WithReceiverMiddleware(linkMiddleware))}
	for _, o := range opts {
		o(k)
	}
	for n := range k.allowed {
		if err := ValidateNodeName(n); err != nil {
			return fmt.Errorf("dist: RegisterKind %q: allow-list: %w", name, err)
		}
	}
	m.kindsMu.Lock()
	defer m.kindsMu.Unlock()
	if _, ok := m.kinds[name]; ok {
		return fmt.Errorf("dist: kind %q already registered", name)
	}
	m.kinds[name] = k
	return nil
}

func (m *Manager) kind(name string) *kind {
	m.kindsMu.RLock()
	defer m.kindsMu.RUnlock()
	return m.kinds[name]
}

// checkSpawnOptions checks that a Spawn's link and monitor are actors
// of this node.
func (m *Manager) checkSpawnOptions(s *Spawn) error {
	for _, p := range [...]*actor.PID{s.Link, s.Monitor} {
		if p != nil && p.Address != m.name {
			return fmt.Errorf("%w: %s", ErrNotLocal, pidName(p))
		}
	}
	return nil
}

// spawnName names an actor this node spawns on a peer with a link or a
// monitor, so the link and the watch are in place here before the
// request leaves.
func (m *Manager) spawnName() string {
	return fmt.Sprintf("spawn$%s$%s$%d", m.name, m.inc, m.spawnNames.Add(1))
}

type pendingSpawn struct {
	msg     *Spawn
	replyTo *actor.PID
}

// spawnInFlight is a spawn request sent and not yet answered.
type spawnInFlight struct {
	replyTo *actor.PID
	// child is the spawned actor's PID when this node named it (a link
	// or a monitor is in place for it); nil otherwise.
	child         *actor.PID
	link, monitor *actor.PID
}

func (c *controller) flushSpawns() {
	s := c.sess
	for _, p := range c.spawnWait {
		c.spawnSeq++
		id := c.spawnSeq
		f := &spawnInFlight{replyTo: p.replyTo, link: p.msg.Link, monitor: p.msg.Monitor}
		req := &caskpb.SpawnRequest{RequestId: id, Kind: p.msg.Kind, Name: p.msg.Name}
		if err := c.prepareSpawn(f, req); err != nil {
			c.m.system.Root.Send(p.replyTo, &SpawnResult{Err: peerErr("spawn", c.peer, err)})
			continue
		}
		err := s.sendControl(&caskpb.Control{Body: &caskpb.Control_SpawnRequest{SpawnRequest: req}})
		if err != nil {
			c.undoSpawn(f)
			c.m.system.Root.Send(p.replyTo, &SpawnResult{Err: peerErr("spawn", c.peer, ErrConnectionLost)})
			continue
		}
		c.spawns[id] = f
	}
	c.spawnWait = nil
}

// prepareSpawn puts the link and the watch of a SpawnLink or SpawnMonitor
// in place on this side before the request leaves, naming the child if
// the caller did not, so a signal from the child finds them whatever
// arrives first, the answer or the signal.
func (c *controller) prepareSpawn(f *spawnInFlight, req *caskpb.SpawnRequest) error {
	if f.link == nil && f.monitor == nil {
		return nil
	}
	if c.sess.caps&(1<<caskpb.Capability_CAPABILITY_LINKS) == 0 {
		// An older build would ignore the link and the monitor and
		// spawn the actor unlinked.
		return fmt.Errorf("%w: %s does not support SpawnLink and SpawnMonitor (an older build)", ErrSpawnFailed, c.peer)
	}
	if req.Name == "" {
		req.Name = c.m.spawnName()
	}
	f.child = actor.NewPID(c.peer, req.Name)
	if f.link != nil {
		if err := c.m.links.prepareSpawnLink(f.link, f.child); err != nil {
			return err
		}
		req.LinkId = f.link.Id
	}
	if f.monitor != nil {
		c.ep.addWatchOut(f.child.Id, f.monitor)
		req.MonitorId = f.monitor.Id
	}
	return nil
}

// undoSpawn removes the link and the watch of a spawn that failed.
func (c *controller) undoSpawn(f *spawnInFlight) {
	if f.child == nil {
		return
	}
	if f.link != nil {
		c.m.links.dropSpawnLink(f.link, f.child)
	}
	if f.monitor != nil {
		c.ep.removeWatchOut(f.child, f.monitor.Id)
	}
}

func (c *controller) onSpawnRequest(r *spawnRequest) {
	req := r.req
	resp := &caskpb.SpawnResponse{RequestId: req.GetRequestId()}
	k := c.m.kind(req.GetKind())
	switch {
	case k == nil:
		resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_UNKNOWN_KIND, "kind "+req.GetKind()+" is not registered"
	case k.allowed != nil && !k.allowed[c.peer]:
		resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_NOT_ALLOWED, "kind "+req.GetKind()+" may not be spawned by "+c.peer
	default:
		props := k.props
		if req.GetLinkId() != "" || req.GetMonitorId() != "" {
			props = c.spawnProps(r.s, props, req)
		}
		var pid *actor.PID
		var err error
		if req.GetName() == "" {
			pid = c.m.system.Root.Spawn(props)
		} else {
			pid, err = c.m.system.Root.SpawnNamed(props, req.GetName())
		}
		switch {
		case errors.Is(err, actor.ErrNameExists):
			resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_NAME_TAKEN, "name "+req.GetName()+" is taken"
		case err != nil:
			resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_FAILED, err.Error()
		default:
			resp.PidId = pid.Id
		}
	}
	if resp.Error != caskpb.SpawnError_SPAWN_ERROR_NONE {
		c.m.log.Info("refused remote spawn", c.log("kind", req.GetKind(), "name", req.GetName(), "detail", resp.Detail)...)
	}
	_ = r.s.sendControl(&caskpb.Control{Body: &caskpb.Control_SpawnResponse{SpawnResponse: resp}})
}

// spawnProps adds to props what a SpawnLink or SpawnMonitor needs: a
// receiver middleware that, when the new actor's first message (Started)
// arrives and before the actor sees it, links it with the requester's
// actor and adds the requester's watch. Both are Watch system messages
// posted while Started runs, so they are handled before anything that
// could stop the actor afterwards (protoactor posts nothing to a mailbox
// before Started: OnInit runs before the mailbox has its dispatcher).
func (c *controller) spawnProps(s *session, props *actor.Props, req *caskpb.SpawnRequest) *actor.Props {
	var link, monitor *actor.PID
	if id := req.GetLinkId(); id != "" {
		link = actor.NewPID(c.peer, id)
	}
	if id := req.GetMonitorId(); id != "" {
		monitor = actor.NewPID(c.peer, id)
	}
	m := c.m
	var once sync.Once
	return props.Clone(actor.WithReceiverMiddleware(func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			if _, ok := env.Message.(*actor.Started); ok {
				once.Do(func() {
					self := ctx.Self()
					if link != nil {
						m.links.spawned(self, link)
					}
					if monitor != nil {
						s.ep.addWatchIn(self.Id, monitor)
						p, _ := m.system.ProcessRegistry.GetLocal(self.Id)
						p.SendSystemMessage(self, &actor.Watch{Watcher: monitor})
					}
				})
			}
			next(ctx, env)
		}
	}))
}

func (c *controller) onSpawnResponse(r *spawnResponse) {
	resp := r.resp
	f, ok := c.spawns[resp.GetRequestId()]
	if !ok {
		return
	}
	delete(c.spawns, resp.GetRequestId())
	var res SpawnResult
	switch resp.GetError() {
	case caskpb.SpawnError_SPAWN_ERROR_NONE:
		res.PID = actor.NewPID(c.peer, resp.GetPidId())
	case caskpb.SpawnError_SPAWN_ERROR_UNKNOWN_KIND:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrUnknownKind, resp.GetDetail()))
	case caskpb.SpawnError_SPAWN_ERROR_NAME_TAKEN:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrNameTaken, resp.GetDetail()))
	case caskpb.SpawnError_SPAWN_ERROR_NOT_ALLOWED:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrSpawnNotAllowed, resp.GetDetail()))
	default:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrSpawnFailed, resp.GetDetail()))
	}
	if res.Err != nil {
		c.undoSpawn(f)
	}
	if f.replyTo != nil {
		c.m.system.Root.Send(f.replyTo, &res)
	}
}
