// The outbound path, first stop: the endpoint.
//
// A message to a remote PID enters here (SendUserMessage or
// SendSystemMessage, called by protoactor on the sender's goroutine). With
// a session up it is encoded straight into the session's stream buffer
// (outbound.go), written by that stream's writer goroutine to its QUIC
// stream (package transport), and on the peer read, decoded and posted to
// the target's mailbox (inbound.go). With no session it waits, encoded, in
// a bounded queue while the controller connects, or, while the peer is
// unreachable (its last connect attempt failed and the backoff runs), is
// a dead letter at once.
//
// Ownership: an endpoint lives while its peer needs it: it is retired
// (tryRetire) when its connect failed or its session ended and nothing
// waits on it, and a fresh one is made on the next send. sess,
// controllerPID and retired are atomics, written by the controller (attach, detach)
// and the manager actor (controllerPID) and read by senders. pending,
// requested and the two watch tables are guarded by mu: they are the
// hand-off point between sender goroutines (which queue messages and record
// the watches they send), session readers (which record a watch arriving
// from the peer before delivering it, so a Terminated sent back at once
// always finds its entry) and the controller (which flushes the queue into
// a new session and ends the watches of a lost one).

package dist

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// endpoint is the actor.Process for every PID of one remote node. The
// address resolver returns it and protoactor caches it in the PIDs; it
// survives reconnects. Once the peer has no session, nothing queued, no
// watch, no pin and no controller work, its controller retires it: it
// leaves the Manager's map (so names that never resolved cost nothing),
// and a PID that still caches it forwards every send to the live endpoint
// for the name, made afresh when needed. Sending encodes
// the message on the caller's goroutine and hands the frame to the
// current session's stream writer; with no session, the message waits in
// a bounded queue while the controller connects.
type endpoint struct {
	name string
	mgr  *Manager

	sess          atomic.Pointer[session] // current open session, nil when none
	controllerPID atomic.Pointer[actor.PID]
	pins          atomic.Int32
	// retired is set, under mu, once the endpoint left the Manager's
	// map; senders then forward to the live endpoint (live).
	retired atomic.Bool
	// unreachable is set, under mu, by the controller while its peer's
	// reconnect backoff runs (controller.attemptFailed): a send with no
	// session is then a dead letter with this reason at once. Only read
	// when there is no session, so it costs the fast path nothing.
	unreachable atomic.Pointer[unreachableError]
	// counters count the peer's traffic for metrics and PeerInfo
	// (peerinfo.go); nil without a MeterProvider or CountTraffic. Set at
	// creation, never changed.
	counters *peerCounters

	mu        sync.Mutex
	pending   []*queuedMessage
	requested bool // a connect was asked for and is not settled
	// outbound: remote watchee id → local watchers (by id).
	watchesOut map[string]map[string]*actor.PID
	// inbound: local watchee id → remote watchers (by id).
	watchesIn map[string]map[string]*actor.PID
}

var _ actor.Process = (*endpoint)(nil)

// queuedMessage is one encoded message waiting for a session.
type queuedMessage struct {
	target   *actor.PID
	sender   *actor.PID
	typeName string
	payload  []byte
	header   []string
	system   bool
	msg      any // the message as sent, for dead letters
}

func newEndpoint(m *Manager, name string) *endpoint {
	return &endpoint{name: name, mgr: m, counters: m.traffic.counters(name)}
}

func (ep *endpoint) controller() *actor.PID { return ep.controllerPID.Load() }

// SendUserMessage implements actor.Process.
func (ep *endpoint) SendUserMessage(pid *actor.PID, message any) {
	header, msg, sender := actor.UnwrapEnvelope(message)
	var hdr []string
	if header != nil && header.Length() > 0 {
		hdr = headerPairs(header)
	}
	ep.send(pid, msg, sender, hdr, false)
}

// headerPairs flattens a message header to key, value, key, value...
//
//go:noinline
func headerPairs(header actor.ReadonlyMessageHeader) []string {
	hdr := make([]string, 0, 2*header.Length())
	for _, k := range header.Keys() {
		hdr = append(hdr, k, header.Get(k))
	}
	return hdr
}

// SendSystemMessage implements actor.Process.
func (ep *endpoint) SendSystemMessage(pid *actor.PID, message any) {
	switch m := message.(type) {
	case *actor.Watch:
		if m.Watcher == nil {
			return
		}
		ep.mu.Lock()
		if ep.retired.Load() {
			ep.mu.Unlock()
			ep.live().SendSystemMessage(pid, message)
			return
		}
		ep.watchesOut = addWatch(ep.watchesOut, pid.Id, m.Watcher)
		ep.mu.Unlock()
		ep.send(pid, m, m.Watcher, nil, true)
	case *actor.Unwatch:
		if m.Watcher == nil {
			return
		}
		ep.removeWatchOut(pid, m.Watcher.Id)
		ep.send(pid, m, m.Watcher, nil, true)
	case *actor.Terminated:
		if m.Who != nil {
			ep.removeWatchIn(m.Who.Id, pid)
		}
		ep.send(pid, m, nil, nil, true)
	case *actor.Stop:
		ep.send(pid, m, nil, nil, true)
	default:
		ep.mgr.publishDeadLetter(pid, message, nil, ep.name,
			fmt.Errorf("%w: %T", ErrUnsupportedSystemMessage, message))
	}
}

// Stop implements actor.Process.
func (ep *endpoint) Stop(pid *actor.PID) {
	ep.SendSystemMessage(pid, &actor.Stop{})
}

// send encodes msg on the caller's goroutine into the current session's
// stream buffer, or queues it while there is no session.
//
// The caller is usually an actor's mailbox goroutine, which protoactor
// starts afresh, with a minimal stack, for each burst of messages. The
// fast path therefore keeps its frames small (no message structs, error
// formatting out of line, the encoder called from a shallow frame):
// every doubling of the stack it causes costs the sending actor
// microseconds.
func (ep *endpoint) send(pid *actor.PID, msg any, sender *actor.PID, header []string, system bool) {
	pm, ok := msg.(proto.Message)
	if !ok || pm == nil {
		ep.notProtobuf(pid, msg, sender)
		return
	}
	if s := ep.sess.Load(); s != nil {
		err := s.sendMessage(pid, sender, pm, header, system)
		if err == nil {
			return
		}
		if errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrEncode) {
			ep.undeliverable(pid, msg, sender, err)
			return
		}
	}
	if ep.retired.Load() {
		ep.live().send(pid, msg, sender, header, system)
		return
	}
	ep.queue(pid, msg, pm, sender, header, system)
}

// live is the endpoint now serving this one's peer: a retired endpoint
// is still cached in PIDs resolved before it retired, and forwards.
//
//go:noinline
func (ep *endpoint) live() *endpoint { return ep.mgr.endpoint(ep.name) }

//go:noinline
func (ep *endpoint) notProtobuf(pid *actor.PID, msg any, sender *actor.PID) {
	ep.undeliverable(pid, msg, sender, fmt.Errorf("%w: %T", ErrNotProtobuf, msg))
	ep.tryRetire(nil) // an endpoint nothing was ever queued on
}

// queue encodes msg and sends it through sendSlow: there was no session,
// or the session was closing.
//
//go:noinline
func (ep *endpoint) queue(pid *actor.PID, msg any, pm proto.Message, sender *actor.PID, header []string, system bool) {
	if u := ep.unreachable.Load(); u != nil {
		// Checked again under mu in sendSlow; here it saves encoding a
		// message that will not be sent.
		ep.failFast(pid, msg, sender, u)
		return
	}
	typeName := string(pm.ProtoReflect().Descriptor().FullName())
	payload, err := proto.Marshal(pm)
	if err != nil {
		ep.undeliverable(pid, msg, sender, fmt.Errorf("%w: %s: %w", ErrEncode, typeName, err))
		ep.tryRetire(nil)
		return
	}
	if len(payload) > ep.mgr.cfg.MaxMessageSize {
		ep.undeliverable(pid, msg, sender, tooLarge(typeName, len(payload), ep.mgr.cfg.MaxMessageSize, ""))
		ep.tryRetire(nil)
		return
	}
	ep.sendSlow(&queuedMessage{target: pid, sender: sender, typeName: typeName, payload: payload,
		header: header, system: system, msg: msg})
}

// sendSlow queues o while there is no usable session.
func (ep *endpoint) sendSlow(o *queuedMessage) {
	for {
		ep.mu.Lock()
		if ep.retired.Load() {
			ep.mu.Unlock()
			ep.live().sendSlow(o)
			return
		}
		if s := ep.sess.Load(); s != nil && !s.isClosing() {
			ep.mu.Unlock()
			err := s.send(o)
			if err == nil {
				return
			}
			if errors.Is(err, ErrMessageTooLarge) {
				ep.undeliverable(o.target, o.msg, o.sender, err)
				return
			}
			continue
		}
		if u := ep.unreachable.Load(); u != nil {
			ep.mu.Unlock()
			ep.failFast(o.target, o.msg, o.sender, u)
			return
		}
		if len(ep.pending) >= ep.mgr.cfg.PendingLimit {
			ep.mu.Unlock()
			ep.undeliverable(o.target, o.msg, o.sender, fmt.Errorf("%w: %d messages wait for %s",
				ErrQueueFull, ep.mgr.cfg.PendingLimit, ep.name))
			return
		}
		ep.pending = append(ep.pending, o)
		ask := !ep.requested
		ep.requested = true
		ep.mu.Unlock()
		if ask {
			ep.mgr.requestConnect(ep.name)
		}
		return
	}
}

// failFast refuses a send to an unreachable peer: a dead letter with u,
// and for a Watch a Terminated(AddressTerminated) to the watcher, as if
// the watch had waited for the failed attempt.
func (ep *endpoint) failFast(pid *actor.PID, msg any, sender *actor.PID, u *unreachableError) {
	if w, ok := msg.(*actor.Watch); ok {
		ep.removeWatchOut(pid, w.Watcher.Id)
		if p, ok := ep.mgr.system.ProcessRegistry.GetLocal(w.Watcher.Id); ok {
			p.SendSystemMessage(w.Watcher, &actor.Terminated{Who: pid, Why: actor.TerminatedReason_AddressTerminated})
		}
	}
	ep.undeliverable(pid, msg, sender, u)
}

// setUnreachable marks the peer unreachable with u, or reachable when u
// is nil. Called by the controller.
func (ep *endpoint) setUnreachable(u *unreachableError) {
	ep.mu.Lock()
	ep.unreachable.Store(u)
	ep.mu.Unlock()
}

// attach makes s the session senders use, after flushing the queue into
// it in order. Called by the controller.
func (ep *endpoint) attach(s *session) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	for _, o := range ep.pending {
		if err := s.send(o); err != nil {
			if errors.Is(err, ErrMessageTooLarge) {
				ep.undeliverable(o.target, o.msg, o.sender, err)
				continue
			}
			break
		}
	}
	ep.pending = nil
	ep.requested = false
	ep.sess.Store(s)
}

// detach stops senders from using s: they queue until the next
// connection. Called by the controller.
func (ep *endpoint) detach(s *session) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.sess.Load() == s {
		ep.sess.Store(nil)
	}
}

// takeWatches returns and forgets the watches across the session, which
// the controller turns into Terminated and Unwatch when the session ends.
func (ep *endpoint) takeWatches() (watchesOut, watchesIn map[string]map[string]*actor.PID) {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	watchesOut, watchesIn = ep.watchesOut, ep.watchesIn
	ep.watchesOut, ep.watchesIn = nil, nil
	return watchesOut, watchesIn
}

// failPending dead-letters every queued message with err and returns the
// watches that were waiting for the session and how many messages it
// dead-lettered.
func (ep *endpoint) failPending(err error) (watchesOut map[string]map[string]*actor.PID, n int) {
	ep.mu.Lock()
	pending := ep.pending
	ep.pending = nil
	ep.requested = false
	if ep.sess.Load() == nil {
		watchesOut = ep.watchesOut
		ep.watchesOut = nil
		for id := range ep.watchesIn {
			delete(ep.watchesIn, id)
		}
	}
	ep.mu.Unlock()
	for _, o := range pending {
		if _, isWatch := o.msg.(*actor.Watch); isWatch {
			continue // answered with Terminated by the caller
		}
		ep.undeliverable(o.target, o.msg, o.sender, err)
		n++
	}
	return watchesOut, n
}

// tryRetire takes the endpoint out of the Manager's map when nothing
// needs it: no session, nothing queued or requested, no watch, no pin,
// and no controller other than ctrl (the caller, which has checked its own
// waiters). It reports whether the endpoint is retired. Senders check
// retired under mu before they queue, so no message is left behind in a
// retired endpoint: they forward to the live one instead.
func (ep *endpoint) tryRetire(ctrl *actor.PID) bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.retired.Load() {
		return true
	}
	if ep.sess.Load() != nil || len(ep.pending) > 0 || ep.requested ||
		len(ep.watchesOut) > 0 || len(ep.watchesIn) > 0 || ep.pins.Load() != 0 {
		return false
	}
	if c := ep.controllerPID.Load(); c != nil && (ctrl == nil || !c.Equal(ctrl)) {
		return false
	}
	ep.retired.Store(true)
	ep.mgr.endpoints.CompareAndDelete(ep.name, ep)
	return true
}

// withLive runs f on the live endpoint for node under its mutex, so f's
// changes (pins) cannot race with the endpoint's retirement.
func (m *Manager) withLive(node string, f func(ep *endpoint)) {
	for {
		ep := m.endpoint(node)
		ep.mu.Lock()
		if ep.retired.Load() {
			ep.mu.Unlock()
			continue
		}
		f(ep)
		ep.mu.Unlock()
		return
	}
}

func (ep *endpoint) hasPending() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.pending) > 0
}

func (ep *endpoint) hasWatches() bool {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.watchesOut) > 0 || len(ep.watchesIn) > 0
}

func (ep *endpoint) undeliverable(pid *actor.PID, msg any, sender *actor.PID, err error) {
	ep.mgr.log.Debug("message not delivered", "peer", ep.name, "target", pid.GetId(), "err", err)
	ep.mgr.publishDeadLetter(pid, msg, sender, ep.name, err)
	if _, ok := msg.(*caskpb.LinkRequest); ok {
		// A link that could not be made ends with noconnection.
		ep.mgr.links.linkFailed(sender, pid, err)
	}
}

func (ep *endpoint) addWatchIn(localID string, watcher *actor.PID) {
	ep.mu.Lock()
	ep.watchesIn = addWatch(ep.watchesIn, localID, watcher)
	ep.mu.Unlock()
}

func (ep *endpoint) removeWatchIn(localID string, watcher *actor.PID) {
	ep.mu.Lock()
	removeWatch(ep.watchesIn, localID, watcher.Id)
	ep.mu.Unlock()
}

func (ep *endpoint) addWatchOut(remoteID string, watcher *actor.PID) {
	ep.mu.Lock()
	ep.watchesOut = addWatch(ep.watchesOut, remoteID, watcher)
	ep.mu.Unlock()
}

func (ep *endpoint) removeWatchOut(remote *actor.PID, localWatcherID string) {
	ep.mu.Lock()
	removeWatch(ep.watchesOut, remote.Id, localWatcherID)
	ep.mu.Unlock()
}

func addWatch(m map[string]map[string]*actor.PID, key string, pid *actor.PID) map[string]map[string]*actor.PID {
	if m == nil {
		m = make(map[string]map[string]*actor.PID)
	}
	set := m[key]
	if set == nil {
		set = make(map[string]*actor.PID)
		m[key] = set
	}
	set[pid.Id] = pid
	return m
}

func removeWatch(m map[string]map[string]*actor.PID, key, id string) {
	if set := m[key]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(m, key)
		}
	}
}
