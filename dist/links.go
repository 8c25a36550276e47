// Links: Erlang-style links between actors of this node and of its
// peers, the exit signals they carry, and how an actor's exit reason is
// known.
//
// A link joins two actors, at least one of them on this node. The table
// keeps, per local actor, the actors it is linked with; the Manager's
// link watcher actor watches every local actor in it, and turns its
// Terminated into exit signals: to a local partner at once, to a remote
// one as a system envelope on the data stream of that partner (so the
// signal follows the messages sent to it before). On the partner's node
// the reader hands the signal to this table, which stops the partner or,
// if it traps exits, sends it *Exited.
//
// Why an actor exited is known from what happened just before its
// Terminated: protoactor's supervisor strategies publish a
// SupervisorEvent with the stop directive before they stop a failed
// child (abnormal); an exit signal that stops an actor is recorded here
// (abnormal); the receiver middleware of link-aware actors (TrapExits,
// remotely spawned kinds) marks their children when they stop or restart
// (shutdown); Stop marks every link (shutdown). Anything else is a Stop
// or Poison (normal); a watch answered NotFound is noproc.
//
// Ownership: the table (links, per-node counts, recorded exit reasons,
// trapping actors) is guarded by linkTable.mu. It is a hand-off point
// between the API (Link, Unlink, remote spawn), the session readers
// (inbound link signals), the link watcher actor (local Terminated), the
// controllers (a session ended), the supervisor-event subscriber and the
// middleware of link-aware actors; all of them only hold mu to read and
// change the table, and send signals, watches and stops after releasing
// it.

package dist

import (
	"errors"
	"fmt"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/asynkron/protoactor-go/extensions"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// ExitReason says why a linked actor exited (docs/dist.md, "Links").
type ExitReason string

// Exit reasons, after Erlang's.
const (
	// ExitNormal: stopped by Stop or Poison sent to it. It does not stop
	// linked actors; a trapping one gets *Exited.
	ExitNormal ExitReason = "normal"
	// ExitShutdown: its parent or its node is stopping. It stops linked
	// actors that do not trap exits.
	ExitShutdown ExitReason = "shutdown"
	// ExitAbnormal: stopped by its supervisor after a failure, or by an
	// exit signal. It stops linked actors that do not trap exits.
	ExitAbnormal ExitReason = "abnormal"
	// ExitNoConnection: the session to the linked actor's node ended; as
	// abnormal.
	ExitNoConnection ExitReason = "noconnection"
	// ExitNoProc: the linked actor did not exist when the link was made;
	// as abnormal.
	ExitNoProc ExitReason = "noproc"
)

// Exited is the message an actor built with TrapExits (actors.TrapExits)
// receives, instead of being stopped, when an actor linked with it
// exits, for every reason including normal. It is posted to the
// trapping actor's mailbox as a user message, after the messages the
// exiting actor sent it before it exited.
type Exited struct {
	// Who is the linked actor that exited.
	Who    *actor.PID
	Reason ExitReason
	// Detail says more where there is more to say: the failure that
	// stopped Who, the exit signal that stopped it, the session's end.
	Detail string
}

// linkRequestType is the protobuf name of LinkRequest.
var linkRequestType = string((&caskpb.LinkRequest{}).ProtoReflect().Descriptor().FullName())

// maxExitDetail bounds the detail an exit signal carries.
const maxExitDetail = 256

// localEnd is one local actor's entry in the link table.
type localEnd struct {
	pid      *actor.PID
	partners map[pidKey]*actor.PID
	// reason and detail, once set, say why the actor is exiting; the
	// first recorded reason wins.
	reason ExitReason
	detail string
}

// pidKey names a PID in the table: address and id.
type pidKey struct{ addr, id string }

func keyOf(p *actor.PID) pidKey { return pidKey{p.Address, p.Id} }

// linkTable is the node's links. See the file comment for ownership.
type linkTable struct {
	m *Manager

	mu    sync.Mutex
	ends  map[string]*localEnd // local actor id → its links
	nodes map[string]int       // peer → links with an end there
	traps map[string]bool      // ids of local actors that trap exits
	// closed: the node is stopping; links made now are refused.
	closed  bool
	watcher *actor.PID
	sub     *eventstream.Subscription
}

// linkAction is one effect of a table change, run after mu is released.
type linkAction struct {
	kind   linkActionKind
	target *actor.PID
	from   *actor.PID
	reason ExitReason
	detail string
}

type linkActionKind int

const (
	actWatch linkActionKind = iota
	actUnwatch
	actLinkRequest // LinkRequest from → target (remote)
	actLinkRelease // LinkRelease from → target (remote)
	actExitSignal  // ExitSignal from → target (remote)
	actExited      // *Exited to target (local, trapping)
	actStop        // stop target (local)
)

var linksExtensionID = extensions.NextExtensionID()

// linksExtension makes the table reachable from an actor system, for the
// props options (TrapExits) that only see the spawned actor's context.
type linksExtension struct{ t *linkTable }

func (linksExtension) ExtensionID() extensions.ExtensionID { return linksExtensionID }

func linksOf(system *actor.ActorSystem) *linkTable {
	if system == nil || system.Extensions == nil {
		return nil
	}
	if e, ok := system.Extensions.Get(linksExtensionID).(linksExtension); ok {
		return e.t
	}
	return nil
}

func newLinkTable(m *Manager) *linkTable {
	return &linkTable{m: m, ends: make(map[string]*localEnd), nodes: make(map[string]int), traps: make(map[string]bool)}
}

// start spawns the link watcher, registers the table with the actor
// system and subscribes to supervisor events. Called by Manager.Start.
func (t *linkTable) start() error {
	props := actor.PropsFromFunc(func(c actor.Context) {
		if msg, ok := c.Message().(*actor.Terminated); ok && msg.Who != nil {
			t.exited(msg.Who, msg.Why)
		}
	})
	pid, err := t.m.system.Root.SpawnNamed(props, "dist.links")
	if err != nil {
		return err
	}
	t.watcher = pid
	t.m.system.Extensions.Register(linksExtension{t})
	t.sub = t.m.system.EventStream.SubscribeWithPredicate(func(evt any) {
		e := evt.(*actor.SupervisorEvent)
		t.supervisorStopped(e.Child, e.Reason)
	}, func(evt any) bool {
		e, ok := evt.(*actor.SupervisorEvent)
		return ok && e.Directive == actor.StopDirective && e.Child != nil
	})
	return nil
}

// stop sends an exit signal with reason shutdown from every local actor
// to each of its remote partners, on their data streams (before the
// sessions' goodbyes flush them), and empties the table. Called by
// Manager.Stop before the sessions close.
func (t *linkTable) stop() {
	var acts []linkAction
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	for _, e := range t.ends {
		for _, p := range e.partners {
			if p.Address != t.m.name {
				acts = append(acts, linkAction{kind: actExitSignal, target: p, from: e.pid,
					reason: ExitShutdown, detail: "node " + t.m.name + " is stopping"})
			}
		}
	}
	t.ends, t.nodes, t.traps = make(map[string]*localEnd), make(map[string]int), make(map[string]bool)
	t.mu.Unlock()
	if t.sub != nil {
		t.m.system.EventStream.Unsubscribe(t.sub)
	}
	t.run(acts)
}

func (t *linkTable) local(p *actor.PID) bool { return p.Address == t.m.name }

// addPairLocked links local actor x with y (either node), watching x if
// it is new to the table. It reports whether the pair is new.
func (t *linkTable) addPairLocked(x, y *actor.PID, acts *[]linkAction) bool {
	e := t.ends[x.Id]
	if e == nil {
		e = &localEnd{pid: x, partners: make(map[pidKey]*actor.PID)}
		t.ends[x.Id] = e
		*acts = append(*acts, linkAction{kind: actWatch, target: x})
	}
	k := keyOf(y)
	if _, ok := e.partners[k]; ok {
		return false
	}
	e.partners[k] = y
	if !t.local(y) {
		t.nodes[y.Address]++
	}
	return true
}

// removePairLocked unlinks local actor x from y; x leaves the table (and
// is unwatched, when unwatch) once it has no partner. It reports whether
// the pair existed.
func (t *linkTable) removePairLocked(x, y *actor.PID, unwatch bool, acts *[]linkAction) bool {
	e := t.ends[x.Id]
	if e == nil {
		return false
	}
	k := keyOf(y)
	if _, ok := e.partners[k]; !ok {
		return false
	}
	delete(e.partners, k)
	if !t.local(y) {
		if t.nodes[y.Address]--; t.nodes[y.Address] <= 0 {
			delete(t.nodes, y.Address)
		}
	}
	if len(e.partners) == 0 {
		delete(t.ends, x.Id)
		if unwatch {
			*acts = append(*acts, linkAction{kind: actUnwatch, target: x})
		}
	}
	return true
}

// deliverLocked settles an exit signal from → target, target local, the
// link between them already removed: a trapping target gets *Exited; any
// other is stopped, with reason abnormal, unless the reason is normal.
func (t *linkTable) deliverLocked(target, from *actor.PID, reason ExitReason, detail string, acts *[]linkAction) {
	if t.traps[target.Id] {
		*acts = append(*acts, linkAction{kind: actExited, target: target, from: from, reason: reason, detail: detail})
		return
	}
	if reason == ExitNormal {
		return
	}
	if e := t.ends[target.Id]; e != nil && e.reason == "" {
		e.reason, e.detail = ExitAbnormal, clip("exit signal from "+pidName(from)+": "+describe(reason, detail))
	}
	*acts = append(*acts, linkAction{kind: actStop, target: target})
}

// pidName prints a PID as address/id in exit details.
func pidName(p *actor.PID) string { return p.Address + "/" + p.Id }

func describe(reason ExitReason, detail string) string {
	if detail == "" {
		return string(reason)
	}
	return string(reason) + " (" + detail + ")"
}

func clip(s string) string {
	if len(s) > maxExitDetail {
		return s[:maxExitDetail]
	}
	return s
}

// link links a and b; at least one must be local.
func (t *linkTable) link(a, b *actor.PID) error {
	if a == nil || b == nil {
		return errors.New("dist: Link needs two PIDs")
	}
	if !t.local(a) && !t.local(b) {
		return fmt.Errorf("%w: neither %s nor %s", ErrNotLocal, pidName(a), pidName(b))
	}
	for _, p := range [...]*actor.PID{a, b} {
		if !t.local(p) {
			if err := ValidateNodeName(p.Address); err != nil {
				return err
			}
		}
	}
	if keyOf(a) == keyOf(b) {
		return nil // Erlang: linking to oneself does nothing
	}
	var acts []linkAction
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrStopped
	}
	for _, pair := range [2][2]*actor.PID{{a, b}, {b, a}} {
		x, y := pair[0], pair[1]
		if !t.local(x) {
			continue
		}
		if t.addPairLocked(x, y, &acts) && !t.local(y) {
			acts = append(acts, linkAction{kind: actLinkRequest, target: y, from: x})
		}
	}
	t.mu.Unlock()
	t.run(acts)
	return nil
}

// unlink removes the link between a and b, if any; at least one must be
// local. No exit signal of that link is delivered after it returns.
func (t *linkTable) unlink(a, b *actor.PID) error {
	if a == nil || b == nil {
		return errors.New("dist: Unlink needs two PIDs")
	}
	if !t.local(a) && !t.local(b) {
		return fmt.Errorf("%w: neither %s nor %s", ErrNotLocal, pidName(a), pidName(b))
	}
	var acts []linkAction
	t.mu.Lock()
	for _, pair := range [2][2]*actor.PID{{a, b}, {b, a}} {
		x, y := pair[0], pair[1]
		if !t.local(x) {
			continue
		}
		if t.removePairLocked(x, y, true, &acts) && !t.local(y) {
			acts = append(acts, linkAction{kind: actLinkRelease, target: y, from: x})
		}
	}
	t.mu.Unlock()
	t.run(acts)
	return nil
}

// prepareSpawnLink links local parent with child, a remote actor about to
// be spawned with the link already in place on its node (SpawnLink).
func (t *linkTable) prepareSpawnLink(parent, child *actor.PID) error {
	var acts []linkAction
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrStopped
	}
	t.addPairLocked(parent, child, &acts)
	t.mu.Unlock()
	t.run(acts)
	return nil
}

// dropSpawnLink forgets a link prepared for a spawn that failed.
func (t *linkTable) dropSpawnLink(parent, child *actor.PID) {
	var acts []linkAction
	t.mu.Lock()
	t.removePairLocked(parent, child, true, &acts)
	t.mu.Unlock()
	t.run(acts)
}

// spawned links child, just spawned on this node for a peer's SpawnLink,
// with the remote parent. Called by the child's middleware before the
// child sees its first message (controller.spawnProps).
func (t *linkTable) spawned(child, parent *actor.PID) {
	var acts []linkAction
	t.mu.Lock()
	if !t.closed {
		t.addPairLocked(child, parent, &acts)
	}
	t.mu.Unlock()
	t.run(acts)
}

// inbound handles a link signal a peer sent to local target from its
// actor from (a session reader calls it).
func (t *linkTable) inbound(target, from *actor.PID, msg any) {
	var acts []linkAction
	t.mu.Lock()
	switch m := msg.(type) {
	case *caskpb.LinkRequest:
		if t.closed {
			acts = append(acts, linkAction{kind: actExitSignal, target: from, from: target,
				reason: ExitShutdown, detail: "node " + t.m.name + " is stopping"})
			break
		}
		t.addPairLocked(target, from, &acts)
	case *caskpb.LinkRelease:
		t.removePairLocked(target, from, true, &acts)
	case *caskpb.ExitSignal:
		if t.removePairLocked(target, from, true, &acts) {
			t.deliverLocked(target, from, exitReasonFromWire(m.GetReason()), m.GetDetail(), &acts)
		}
	}
	t.mu.Unlock()
	t.run(acts)
}

// linkFailed settles a LinkRequest from local actor from to remote
// target that could not be delivered: the link ends with noconnection.
func (t *linkTable) linkFailed(from, target *actor.PID, err error) {
	if from == nil || !t.local(from) {
		return
	}
	var acts []linkAction
	t.mu.Lock()
	if t.removePairLocked(from, target, true, &acts) && !t.closed {
		t.deliverLocked(from, target, ExitNoConnection, bare(err.Error()), &acts)
	}
	t.mu.Unlock()
	t.run(acts)
}

// sessionEnded ends every link with an actor on node: the local partner
// gets an exit signal, reason shutdown if the peer said goodbye because
// it stops, noconnection otherwise. The controller calls it where the
// session ends for good, with the watches (controller.retire).
func (t *linkTable) sessionEnded(node string, why NodeDownReason) {
	reason := ExitNoConnection
	if why == ReasonPeerShutdown {
		reason = ExitShutdown
	}
	detail := "session to " + node + " ended: " + string(why)
	var acts []linkAction
	t.mu.Lock()
	if t.nodes[node] == 0 || t.closed {
		t.mu.Unlock()
		return
	}
	for _, e := range t.ends {
		for k, p := range e.partners {
			if k.addr != node {
				continue
			}
			x := e.pid
			t.removePairLocked(x, p, true, &acts)
			t.deliverLocked(x, p, reason, detail, &acts)
		}
	}
	t.mu.Unlock()
	t.run(acts)
}

// hasNode reports whether any link has an end on node (such a session
// is not reaped as idle).
func (t *linkTable) hasNode(node string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[node] > 0
}

// exited turns the Terminated of local actor who into exit signals to
// its partners. The link watcher calls it.
func (t *linkTable) exited(who *actor.PID, why actor.TerminatedReason) {
	var acts []linkAction
	t.mu.Lock()
	e := t.ends[who.Id]
	if e == nil {
		t.mu.Unlock()
		return
	}
	delete(t.ends, who.Id)
	reason, detail := e.reason, e.detail
	switch {
	case reason != "":
	case why == actor.TerminatedReason_NotFound:
		reason = ExitNoProc
	default:
		reason = ExitNormal
	}
	for k, p := range e.partners {
		if !t.local(p) {
			if t.nodes[k.addr]--; t.nodes[k.addr] <= 0 {
				delete(t.nodes, k.addr)
			}
			acts = append(acts, linkAction{kind: actExitSignal, target: p, from: e.pid, reason: reason, detail: detail})
			continue
		}
		if t.removePairLocked(p, e.pid, true, &acts) {
			t.deliverLocked(p, e.pid, reason, detail, &acts)
		}
	}
	t.mu.Unlock()
	t.run(acts)
}

// supervisorStopped records that a supervisor stops child after a
// failure (the event precedes the stop).
func (t *linkTable) supervisorStopped(child *actor.PID, why any) {
	if !t.local(child) {
		return
	}
	t.mu.Lock()
	if e := t.ends[child.Id]; e != nil && e.reason == "" {
		e.reason, e.detail = ExitAbnormal, clip(fmt.Sprintf("failed: %v", why))
	}
	t.mu.Unlock()
}

// parentStopping records that children are stopped because their parent
// stops or restarts.
func (t *linkTable) parentStopping(parent *actor.PID, children []*actor.PID) {
	if len(children) == 0 {
		return
	}
	t.mu.Lock()
	for _, c := range children {
		if e := t.ends[c.Id]; e != nil && e.reason == "" {
			e.reason, e.detail = ExitShutdown, "parent "+parent.Id+" is stopping"
		}
	}
	t.mu.Unlock()
}

func (t *linkTable) setTrap(id string, on bool) {
	t.mu.Lock()
	if on && !t.closed {
		t.traps[id] = true
	} else {
		delete(t.traps, id)
	}
	t.mu.Unlock()
}

// run carries out the effects of a table change, in order.
func (t *linkTable) run(acts []linkAction) {
	for i := range acts {
		a := &acts[i]
		switch a.kind {
		case actWatch, actUnwatch:
			p, _ := t.m.system.ProcessRegistry.GetLocal(a.target.Id)
			if a.kind == actWatch {
				// A dead or unknown actor answers with Terminated
				// (NotFound) through protoactor's dead-letter process.
				p.SendSystemMessage(a.target, &actor.Watch{Watcher: t.watcher})
			} else {
				p.SendSystemMessage(a.target, &actor.Unwatch{Watcher: t.watcher})
			}
		case actLinkRequest:
			t.send(a.target, a.from, &caskpb.LinkRequest{})
		case actLinkRelease:
			t.send(a.target, a.from, &caskpb.LinkRelease{})
		case actExitSignal:
			t.send(a.target, a.from, &caskpb.ExitSignal{Reason: exitReasonToWire(a.reason), Detail: clip(a.detail)})
		case actExited:
			t.m.system.Root.Send(a.target, &Exited{Who: a.from, Reason: a.reason, Detail: a.detail})
		case actStop:
			t.m.system.Root.Stop(a.target)
		}
	}
}

// send writes a link signal to remote target from local actor from, as
// a system envelope on target's data stream.
func (t *linkTable) send(target, from *actor.PID, msg any) {
	t.m.endpoint(target.Address).send(target, msg, from, nil, true)
}

func exitReasonToWire(r ExitReason) caskpb.ExitReason {
	switch r {
	case ExitNormal:
		return caskpb.ExitReason_EXIT_REASON_NORMAL
	case ExitShutdown:
		return caskpb.ExitReason_EXIT_REASON_SHUTDOWN
	case ExitNoConnection:
		return caskpb.ExitReason_EXIT_REASON_NOCONNECTION
	case ExitNoProc:
		return caskpb.ExitReason_EXIT_REASON_NOPROC
	}
	return caskpb.ExitReason_EXIT_REASON_ABNORMAL
}

// exitReasonFromWire reads a peer's reason; one this build does not know
// (a newer peer's) counts as abnormal, which stops a non-trapping actor.
func exitReasonFromWire(r caskpb.ExitReason) ExitReason {
	switch r {
	case caskpb.ExitReason_EXIT_REASON_NORMAL:
		return ExitNormal
	case caskpb.ExitReason_EXIT_REASON_SHUTDOWN:
		return ExitShutdown
	case caskpb.ExitReason_EXIT_REASON_NOCONNECTION:
		return ExitNoConnection
	case caskpb.ExitReason_EXIT_REASON_NOPROC:
		return ExitNoProc
	}
	return ExitAbnormal
}

// TrapExits returns a copy of props whose actors trap exits: an exit
// signal from a linked actor reaches them as *Exited instead of stopping
// them. Their receiver middleware also marks their children as stopped
// by shutdown when they stop or restart. On an actor system without a
// dist layer it changes nothing. actors.TrapExits is the same function.
func TrapExits(props *actor.Props) *actor.Props {
	return props.Clone(actor.WithOnInit(func(c actor.Context) {
		if t := linksOf(c.ActorSystem()); t != nil {
			t.setTrap(c.Self().Id, true)
		}
	}), actor.WithReceiverMiddleware(linkMiddleware))
}

// linkMiddleware is the receiver middleware of link-aware actors
// (TrapExits, kinds spawned by peers): when the actor stops or restarts,
// protoactor stops its children with the same Stop message a user's Stop
// sends, so the middleware records first that they stop with shutdown;
// when the actor has stopped it no longer traps exits.
func linkMiddleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch env.Message.(type) {
		case *actor.Stopping, *actor.Restarting:
			if cc, ok := c.(actor.Context); ok {
				if t := linksOf(c.ActorSystem()); t != nil {
					t.parentStopping(c.Self(), cc.Children())
				}
			}
		case *actor.Stopped:
			if t := linksOf(c.ActorSystem()); t != nil {
				defer t.setTrap(c.Self().Id, false)
			}
		}
		next(c, env)
	}
}

// Link links actors a and b (Erlang's link/1): when either exits for a
// reason other than normal, the other is stopped, or receives *Exited if
// it traps exits (TrapExits). At least one of them must be on this node
// (ErrNotLocal otherwise); both may be. A link to an actor that does not
// exist ends at once with reason noproc; one to an actor on a node that
// cannot be reached, or whose session ends, with noconnection. Linking
// twice is linking once. See docs/dist.md, "Links".
func (m *Manager) Link(a, b *actor.PID) error {
	if !m.started.Load() || m.stopping.Load() {
		return ErrStopped
	}
	return m.links.link(a, b)
}

// Unlink removes the link between a and b (Erlang's unlink/1); at least
// one must be on this node. No exit signal of that link reaches this
// node's actor after Unlink returns; the remote side learns of it in
// order with the messages sent to it.
func (m *Manager) Unlink(a, b *actor.PID) error {
	if !m.started.Load() {
		return ErrStopped
	}
	return m.links.unlink(a, b)
}
