// The Manager: one node's dist layer, its public API and lifetime.
//
// Ownership: the Manager's fields are set by New and Start and only read
// afterwards, except the endpoint map (entries leave it when their
// controller retires them, endpoint.go), connect options (sync.Map), the
// kinds (kindsMu), the acceptors (their own lock) and the membership
// handler (atomic), which any goroutine of the node may use.

package dist

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/internal/ask"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// Manager is the dist layer of one node: it resolves remote PIDs to
// endpoints, runs the dist manager actor that supervises one controller
// actor per peer, and accepts inbound connections. Create it with New,
// then Start; Stop is safe to call twice.
type Manager struct {
	cfg      Config
	name     string
	inc      Incarnation
	system   *actor.ActorSystem
	tr       *transport.Transport
	resolver Resolver
	learned  *LearnedAddrs // nil when MaxLearnedAddrs < 0
	// advertise is the address sent in hellos, welcomes and membership
	// messages (AdvertiseAddr, else the bound address if dialable).
	advertise string
	log       *slog.Logger

	endpoints  sync.Map // node name → *endpoint, while the peer needs one
	badAddress badAddress
	pid        *actor.PID

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines that report to actors
	closes sync.WaitGroup // graceful session closes in progress

	kindsMu sync.RWMutex
	kinds   map[string]*kind
	// spawnNames numbers the names this node gives actors it spawns on
	// peers with SpawnLink or SpawnMonitor and no name.
	spawnNames atomic.Uint64

	// links is the node's link table (links.go).
	links *linkTable

	membership atomic.Pointer[actor.PID]
	acceptors  acceptors

	connectOptions sync.Map // node name → ConnectOptions (SetConnectOptions)

	started  atomic.Bool
	stopping atomic.Bool
	// withoutStreamCredit: announce no CAPABILITY_STREAM_CREDIT, as an
	// older build; set by tests before Start (export_test.go).
	withoutStreamCredit bool
	// withoutLinks: announce no CAPABILITY_LINKS, as an older build;
	// set by tests before Start (export_test.go).
	withoutLinks bool
	// withoutSessions: announce no CAPABILITY_SESSIONS and send no session
	// ids, as a build before sessions; set by tests before Start.
	withoutSessions bool
	// sessionStats: node name → *sessionCounters (SessionStats), kept for
	// the Manager's life.
	sessionStats sync.Map
	// peerSlots counts controllers holding a MaxPeers slot: those with a
	// session or a connect attempt (controller.holdsSlot).
	peerSlots atomic.Int64
	stopOnce  sync.Once
	// metrics holds the OpenTelemetry instruments; nil without
	// Config.MeterProvider. Set in Start, before any endpoint exists.
	metrics *distMetrics
	// traffic holds the per-peer counters (peerinfo.go); nil without
	// Config.MeterProvider or Config.CountTraffic. Set in Start, as
	// metrics.
	traffic *trafficTable
}

// New checks cfg and prepares a Manager for system and tr. It has no side
// effects: nothing runs until Start.
func New(system *actor.ActorSystem, tr *transport.Transport, cfg Config) (*Manager, error) {
	if system == nil || tr == nil {
		return nil, errors.New("dist: New needs an actor system and a transport")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dist: invalid config: %w", err)
	}
	inc := cfg.Incarnation
	for inc == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		inc = Incarnation(binary.LittleEndian.Uint64(b[:]))
	}
	chain := ChainResolver{}
	if len(cfg.Peers) > 0 {
		chain = append(chain, StaticResolver(cfg.Peers))
	}
	chain = append(chain, cfg.Resolvers...)
	if cfg.DiscoveryDir != "" {
		chain = append(chain, DirResolver{Dir: cfg.DiscoveryDir})
	}
	var learned *LearnedAddrs
	if cfg.MaxLearnedAddrs > 0 {
		learned = NewLearnedAddrs(cfg.MaxLearnedAddrs)
		chain = append(chain, learned)
	}
	if !cfg.DisableDNS {
		chain = append(chain, DNSResolver{Port: cfg.DiscoveryPort})
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg: cfg, name: cfg.Name, inc: inc, system: system, tr: tr, resolver: chain, learned: learned,
		log: cfg.Logger.With("node", cfg.Name), ctx: ctx, cancel: cancel,
		kinds: make(map[string]*kind),
	}
	m.badAddress.m = m
	m.links = newLinkTable(m)
	return m, nil
}

// Name is this node's name.
func (m *Manager) Name() string { return m.name }

// Incarnation is this run's incarnation number.
func (m *Manager) Incarnation() Incarnation { return m.inc }

// PID is the dist manager actor. It takes Connect, Spawn, MonitorNode,
// DemonitorNode, Pin and Unpin messages.
func (m *Manager) PID() *actor.PID { return m.pid }

// Start registers the address resolver, spawns the dist manager actor and
// starts accepting connections. The transport must be started.
func (m *Manager) Start() error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("dist: already started")
	}
	if m.system.ProcessRegistry.Address != m.name {
		return fmt.Errorf("dist: actor system address is %q, want the node name %q",
			m.system.ProcessRegistry.Address, m.name)
	}
	m.advertise = advertiseAddr(m.cfg.AdvertiseAddr, m.tr.Addr())
	if m.cfg.CountTraffic || m.cfg.MeterProvider != nil {
		m.traffic = new(trafficTable)
	}
	dm, err := newDistMetrics(m, m.cfg.MeterProvider)
	if err != nil {
		return fmt.Errorf("dist: metrics: %w", err)
	}
	m.metrics = dm
	m.system.ProcessRegistry.RegisterAddressResolver(m.resolve)
	if err := m.links.start(); err != nil {
		return fmt.Errorf("dist: spawn link watcher: %w", err)
	}
	props := actor.PropsFromProducer(func() actor.Actor { return newManagerActor(m) },
		actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(reason any) actor.Directive {
			m.log.Error("controller crashed", "reason", reason)
			return actor.StopDirective
		})))
	pid, err := m.system.Root.SpawnNamed(props, "dist")
	if err != nil {
		return fmt.Errorf("dist: spawn manager: %w", err)
	}
	m.pid = pid
	m.wg.Add(1)
	go m.acceptLoop()
	return nil
}

// AdvertisedAddr is the address this node tells peers to dial
// (Config.AdvertiseAddr, else the bound address if dialable), or "" when
// it has none (bound to an unspecified IP) and peers use the source
// address they see. Valid after Start.
func (m *Manager) AdvertisedAddr() string { return m.advertise }

// LearnedAddrs is the learned discovery source (nil when
// Config.MaxLearnedAddrs is negative). Membership adds the addresses its
// messages carry; the dist layer adds those of authenticated peers.
func (m *Manager) LearnedAddrs() *LearnedAddrs { return m.learned }

// advertiseAddr is configured, else bound when it is dialable.
func advertiseAddr(configured string, bound net.Addr) string {
	if configured != "" {
		return configured
	}
	if u, ok := bound.(*net.UDPAddr); ok && u.IP != nil && !u.IP.IsUnspecified() && u.Port != 0 {
		return u.String()
	}
	return ""
}

// resolve is the protoactor address resolver: every PID whose Address is
// another valid node name is served by that node's endpoint, and every
// other non-empty address that is not this node's by badAddress, which
// dead-letters with ErrBadNodeName. Protoactor serves this node's own
// address and its local placeholder ("nonhost") itself and never asks;
// the empty address stays protoactor's plain dead letter.
func (m *Manager) resolve(pid *actor.PID) (actor.Process, bool) {
	if pid.Address == m.name || pid.Address == "" {
		return nil, false
	}
	if ValidateNodeName(pid.Address) != nil {
		return &m.badAddress, true
	}
	return m.endpoint(pid.Address), true
}

// badAddress is the Process for PIDs whose Address is not a node name
// (such as "nonode" or "x@y@z"): every message to one is a dead letter
// whose Message is an *UndeliveredMessage with a Reason matching
// ErrBadNodeName, and a Watch is answered with Terminated at once. One
// per Manager, shared by every such PID.
type badAddress struct{ m *Manager }

var _ actor.Process = (*badAddress)(nil)

func (b *badAddress) SendUserMessage(pid *actor.PID, message any) {
	_, msg, sender := actor.UnwrapEnvelope(message)
	b.m.publishDeadLetter(pid, msg, sender, pid.Address, ValidateNodeName(pid.Address))
}

func (b *badAddress) SendSystemMessage(pid *actor.PID, message any) {
	if w, ok := message.(*actor.Watch); ok && w.Watcher != nil {
		if p, ok := b.m.system.ProcessRegistry.GetLocal(w.Watcher.Id); ok {
			p.SendSystemMessage(w.Watcher, &actor.Terminated{Who: pid, Why: actor.TerminatedReason_AddressTerminated})
		}
	}
	b.m.publishDeadLetter(pid, message, nil, pid.Address, ValidateNodeName(pid.Address))
}

func (b *badAddress) Stop(pid *actor.PID) { b.SendSystemMessage(pid, &actor.Stop{}) }

// endpoint returns the live endpoint for node, making one if there is
// none. It may be retired by the time the caller uses it; senders then
// forward, and callers that change it use withLive.
func (m *Manager) endpoint(node string) *endpoint {
	if ep, ok := m.endpoints.Load(node); ok {
		return ep.(*endpoint)
	}
	ep, _ := m.endpoints.LoadOrStore(node, newEndpoint(m, node))
	return ep.(*endpoint)
}

func (m *Manager) requestConnect(node string) {
	if m.stopping.Load() {
		m.endpoint(node).failPending(ErrStopped)
		return
	}
	m.system.Root.Send(m.pid, &ensureConnected{node: node})
}

// Stop closes every session gracefully (bounded by ShutdownGrace), stops
// the dist actors and waits for every goroutine the Manager started. The
// transport is closed by its owner afterwards.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		m.stopping.Store(true)
		// Exit signals (shutdown) to remote partners of this node's
		// linked actors go out on the data streams before the goodbyes
		// below flush and finish them.
		m.links.stop()
		if m.pid != nil {
			fut := m.system.Root.RequestFuture(m.pid, &shutdown{}, 2*m.cfg.ShutdownGrace+time.Second)
			_, _ = fut.Result()
			// Stop the actors before waiting for the graceful closes:
			// when the request above timed out (a loaded machine),
			// controllers may still be handling shutdown, and each one
			// that starts a graceful close adds to m.closes, which must
			// not race with Wait. A stopped controller starts none.
			_ = m.system.Root.StopFuture(m.pid).Wait()
			m.closes.Wait()
		}
		m.cancel()
		m.wg.Wait()
		m.metrics.close()
		m.endpoints.Range(func(_, v any) bool {
			v.(*endpoint).failPending(ErrStopped)
			return true
		})
	})
	return nil
}

// Connect opens a session to node if there is none and waits until it is
// up or the attempt failed.
func (m *Manager) Connect(ctx context.Context, node string) error {
	if err := m.checkPeer(node); err != nil {
		return peerErr("connect", node, err)
	}
	res, err := m.request(ctx, &Connect{Node: node})
	if err != nil {
		return peerErr("connect", node, err)
	}
	return res.(*ConnectResult).Err
}

// Disconnect closes the session to node on purpose and waits until it is
// closed (see the Disconnect message): monitors get NodeDown{disconnected},
// and the next send, Connect or Spawn opens a new session. It fails with
// ErrNotConnected when no session was up.
func (m *Manager) Disconnect(ctx context.Context, node string) error {
	if err := m.checkPeer(node); err != nil {
		return peerErr("disconnect", node, err)
	}
	res, err := m.request(ctx, &Disconnect{Node: node})
	if err != nil {
		return peerErr("disconnect", node, err)
	}
	return res.(*DisconnectResult).Err
}

func (m *Manager) checkPeer(node string) error {
	if m.stopping.Load() || !m.started.Load() {
		return ErrStopped
	}
	if err := ValidateNodeName(node); err != nil {
		return err
	}
	if node == m.name {
		return ErrSelf
	}
	return nil
}

// request asks the manager actor and waits for the answer within ctx
// (ConnectTimeout plus a margin when ctx has no deadline).
func (m *Manager) request(ctx context.Context, msg any) (any, error) {
	timeout := ask.Timeout(ctx, 2*m.cfg.ConnectTimeout+time.Second)
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	return ask.Wait(ctx, m.system.Root.RequestFuture(m.pid, msg, timeout))
}

// Nodes lists every node with an open session whose connection is up
// (not one waiting for a new connection after NodeUnreachable), sorted.
func (m *Manager) Nodes() []string {
	var out []string
	m.endpoints.Range(func(k, v any) bool {
		if s := v.(*endpoint).sess.Load(); s != nil && !s.isClosing() {
			out = append(out, k.(string))
		}
		return true
	})
	sort.Strings(out)
	return out
}

// MonitorNode sends NodeUp/NodeDown for node (every node when empty) to
// watcher until DemonitorNode or the watcher stops.
func (m *Manager) MonitorNode(node string, watcher *actor.PID) {
	m.system.Root.Send(m.pid, &MonitorNode{Node: node, Watcher: watcher})
}

// DemonitorNode removes a monitor.
func (m *Manager) DemonitorNode(node string, watcher *actor.PID) {
	m.system.Root.Send(m.pid, &DemonitorNode{Node: node, Watcher: watcher})
}

// Pin keeps the session to node open against idle reaping, by either
// side, until Unpin. Pins are counted.
func (m *Manager) Pin(node string) {
	var n int32
	m.withLive(node, func(ep *endpoint) { n = ep.pins.Add(1) })
	if n == 1 {
		m.pinChanged(node)
	}
}

// Unpin releases one Pin.
func (m *Manager) Unpin(node string) {
	v, ok := m.endpoints.Load(node)
	if !ok {
		return // never pinned: a pinned endpoint is never retired
	}
	ep := v.(*endpoint)
	ep.mu.Lock()
	n := ep.pins.Add(-1)
	if n < 0 {
		ep.pins.Store(0)
	}
	ep.mu.Unlock()
	if n == 0 {
		m.pinChanged(node)
	}
}

// pinChanged tells the peer, over a live session, whether it is pinned.
func (m *Manager) pinChanged(node string) {
	v, ok := m.endpoints.Load(node)
	if !ok {
		return
	}
	ep := v.(*endpoint)
	if s := ep.sess.Load(); s != nil {
		_ = s.sendControl(&caskpb.Control{Body: &caskpb.Control_SessionPin{
			SessionPin: &caskpb.SessionPin{Pinned: ep.pins.Load() > 0}}})
	}
}

// SetMembershipHandler makes pid the receiver of every inbound membership
// message (as *MembershipReceived); nil removes it.
func (m *Manager) SetMembershipHandler(pid *actor.PID) { m.membership.Store(pid) }

// publishDeadLetter publishes an actor.DeadLetterEvent whose Message is an
// *UndeliveredMessage carrying the reason. Protoactor answers a request
// sender with DeadLetterResponse, so a pending RequestFuture fails at once.
func (m *Manager) publishDeadLetter(pid *actor.PID, msg any, sender *actor.PID, node string, err error) {
	m.metrics.deadLetter(node, err)
	m.system.EventStream.Publish(&actor.DeadLetterEvent{
		PID:     pid,
		Message: &UndeliveredMessage{Message: msg, Node: node, Reason: err},
		Sender:  sender,
	})
}
