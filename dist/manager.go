package dist

import (
	"bufio"
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
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/internal/ask"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// Manager is the dist layer of one node: it resolves remote PIDs to
// endpoints, runs the dist manager actor that supervises one controller
// actor per peer, and accepts inbound connections. Create it with New,
// then Start; Stop is safe to call twice.
type Manager struct {
	cfg      Config
	name     string
	inc      uint64
	system   *actor.ActorSystem
	tr       *transport.Transport
	resolver Resolver
	log      *slog.Logger

	endpoints sync.Map // node name → *endpoint
	pid       *actor.PID

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // goroutines that report to actors
	closes sync.WaitGroup // graceful session closes in progress

	kindsMu sync.RWMutex
	kinds   map[string]*actor.Props

	membership atomic.Pointer[actor.PID]
	acceptors  acceptors

	connectOptions sync.Map // node name → ConnectOptions (SetConnectOptions)

	started  atomic.Bool
	stopping atomic.Bool
	stopOnce sync.Once
}

// New checks cfg and prepares a Manager for system and tr. It has no side
// effects: nothing runs until Start.
func New(system *actor.ActorSystem, tr *transport.Transport, cfg Config) (*Manager, error) {
	if system == nil || tr == nil {
		return nil, errors.New("dist: New needs an actor system and a transport")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	inc := cfg.Incarnation
	for inc == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		inc = binary.LittleEndian.Uint64(b[:])
	}
	chain := ChainResolver{}
	if len(cfg.Peers) > 0 {
		chain = append(chain, StaticResolver(cfg.Peers))
	}
	if cfg.DiscoveryDir != "" {
		chain = append(chain, DirResolver{Dir: cfg.DiscoveryDir})
	}
	if !cfg.DisableDNS {
		chain = append(chain, DNSResolver{Port: cfg.DiscoveryPort})
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, name: cfg.Name, inc: inc, system: system, tr: tr, resolver: chain,
		log: cfg.Logger.With("node", cfg.Name), ctx: ctx, cancel: cancel,
		kinds: make(map[string]*actor.Props),
	}, nil
}

// Name is this node's name.
func (m *Manager) Name() string { return m.name }

// Incarnation is this run's incarnation number.
func (m *Manager) Incarnation() uint64 { return m.inc }

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
	m.system.ProcessRegistry.RegisterAddressResolver(m.resolve)
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

// resolve is the protoactor address resolver: every PID whose Address is
// another valid node name is served by that node's endpoint.
func (m *Manager) resolve(pid *actor.PID) (actor.Process, bool) {
	if pid.Address == m.name || ValidateNodeName(pid.Address) != nil {
		return nil, false
	}
	return m.endpoint(pid.Address), true
}

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

// Stop closes every channel gracefully (bounded by ShutdownGrace), stops
// the dist actors and waits for every goroutine the Manager started. The
// transport is closed by its owner afterwards.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() {
		m.stopping.Store(true)
		if m.pid != nil {
			fut := m.system.Root.RequestFuture(m.pid, &shutdown{}, 2*m.cfg.ShutdownGrace+time.Second)
			_, _ = fut.Result()
			m.closes.Wait()
			_ = m.system.Root.StopFuture(m.pid).Wait()
		}
		m.cancel()
		m.wg.Wait()
		m.endpoints.Range(func(_, v any) bool {
			v.(*endpoint).failPending(ErrStopped)
			return true
		})
	})
	return nil
}

// Connect opens a channel to node if there is none and waits until it is
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

// SpawnRemote spawns an actor of a kind registered on node.
func (m *Manager) SpawnRemote(ctx context.Context, node, kind, name string) (*actor.PID, error) {
	if err := m.checkPeer(node); err != nil {
		return nil, peerErr("spawn", node, err)
	}
	res, err := m.request(ctx, &Spawn{Node: node, Kind: kind, Name: name})
	if err != nil {
		return nil, peerErr("spawn", node, err)
	}
	r := res.(*SpawnResult)
	return r.PID, r.Err
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

// Nodes lists every node with an open channel, sorted.
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

// Pin keeps the channel to node open against idle reaping, by either
// side, until Unpin. Pins are counted.
func (m *Manager) Pin(node string) {
	if m.endpoint(node).pins.Add(1) == 1 {
		m.pinChanged(node)
	}
}

// Unpin releases one Pin.
func (m *Manager) Unpin(node string) {
	ep := m.endpoint(node)
	n := ep.pins.Add(-1)
	if n < 0 {
		ep.pins.Store(0)
	}
	if n == 0 {
		m.pinChanged(node)
	}
}

// pinChanged tells the peer, over a live channel, whether it is pinned.
func (m *Manager) pinChanged(node string) {
	ep := m.endpoint(node)
	if s := ep.sess.Load(); s != nil {
		_ = s.sendControl(&caskpb.Control{Body: &caskpb.Control_ChannelPin{
			ChannelPin: &caskpb.ChannelPin{Pinned: ep.pins.Load() > 0}}})
	}
}

// SetMembershipHandler makes pid the receiver of every inbound membership
// message (as *MembershipReceived); nil removes it.
func (m *Manager) SetMembershipHandler(pid *actor.PID) { m.membership.Store(pid) }

// RegisterKind makes props spawnable by peers under kind.
func (m *Manager) RegisterKind(kind string, props *actor.Props) error {
	if kind == "" || props == nil {
		return errors.New("dist: RegisterKind needs a kind name and props")
	}
	m.kindsMu.Lock()
	defer m.kindsMu.Unlock()
	if _, ok := m.kinds[kind]; ok {
		return fmt.Errorf("dist: kind %q already registered", kind)
	}
	m.kinds[kind] = props
	return nil
}

func (m *Manager) kind(name string) *actor.Props {
	m.kindsMu.RLock()
	defer m.kindsMu.RUnlock()
	return m.kinds[name]
}

// publishDeadLetter publishes an actor.DeadLetterEvent whose Message is an
// *UndeliveredMessage carrying the reason. Protoactor answers a request
// sender with DeadLetterResponse, so a pending RequestFuture fails at once.
func (m *Manager) publishDeadLetter(pid *actor.PID, msg any, sender *actor.PID, node string, err error) {
	m.system.EventStream.Publish(&actor.DeadLetterEvent{
		PID:     pid,
		Message: &UndeliveredMessage{Message: msg, Node: node, Reason: err},
		Sender:  sender,
	})
}

// acceptLoop takes authenticated connections from the transport and runs
// the dist handshake on each in its own goroutine.
func (m *Manager) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.tr.Accept(m.ctx)
		if err != nil {
			if m.ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				m.log.Error("accept failed", "err", err)
			}
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.handshakeInbound(conn)
		}()
	}
}

const maxHandshakeFrame = 64 << 10

func (m *Manager) handshakeInbound(conn *transport.Conn) {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ConnectTimeout)
	defer cancel()
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		m.log.Warn("inbound connection sent no control stream", "remote", conn.RemoteAddr(), "err", err)
		conn.CloseWithError(transport.CodeHandshakeFailed, "no control stream")
		return
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetReadDeadline(deadline)
	br := bufio.NewReaderSize(ctrl, 16<<10)
	frame, err := transport.ReadFrame(br, nil, maxHandshakeFrame)
	var hello caskpb.DistHello
	if err == nil {
		err = proto.Unmarshal(frame, &hello)
	}
	if err != nil {
		m.log.Warn("bad dist hello", "remote", conn.RemoteAddr(), "err", err)
		m.reject(conn, ctrl, caskpb.RejectReason_REJECT_REASON_BAD_HELLO, err.Error())
		return
	}
	ctrl.SetReadDeadline(time.Time{})
	peer := hello.GetNode()
	reason, detail := m.checkHello(&hello, conn)
	if reason != caskpb.RejectReason_REJECT_REASON_UNSPECIFIED {
		m.log.Warn("rejected dist hello", "peer", peer, "remote", conn.RemoteAddr(), "reason", reason, "detail", detail)
		m.reject(conn, ctrl, reason, detail)
		return
	}
	m.system.Root.Send(m.pid, &inboundHello{conn: conn, ctrl: ctrl, br: br, hello: &hello})
}

func (m *Manager) checkHello(h *caskpb.DistHello, conn *transport.Conn) (caskpb.RejectReason, string) {
	switch {
	case m.stopping.Load():
		return caskpb.RejectReason_REJECT_REASON_SHUTTING_DOWN, "node is stopping"
	case ValidateNodeName(h.GetNode()) != nil || h.GetNode() == m.name:
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, fmt.Sprintf("bad node name %q", h.GetNode())
	case h.GetToNode() != m.name:
		return caskpb.RejectReason_REJECT_REASON_WRONG_NODE, fmt.Sprintf("this is %s, not %s", m.name, h.GetToNode())
	case h.GetIncarnation() == 0:
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, "zero incarnation"
	}
	if id := conn.Identity().Node; id != "" && id != h.GetNode() {
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, fmt.Sprintf("authenticated as %s but says %s", id, h.GetNode())
	}
	if _, ok := negotiateVersion(h.GetMinVersion(), h.GetMaxVersion()); !ok {
		return caskpb.RejectReason_REJECT_REASON_VERSION, fmt.Sprintf("peer speaks %d..%d, this node %d..%d",
			h.GetMinVersion(), h.GetMaxVersion(), MinProtocolVersion, MaxProtocolVersion)
	}
	return caskpb.RejectReason_REJECT_REASON_UNSPECIFIED, ""
}

func negotiateVersion(lo, hi uint32) (uint32, bool) {
	v := min(hi, uint32(MaxProtocolVersion))
	if v < max(lo, uint32(MinProtocolVersion)) {
		return 0, false
	}
	return v, true
}

func (m *Manager) capabilities() uint64 {
	caps := uint64(1) << caskpb.Capability_CAPABILITY_USER_STREAMS
	if !m.cfg.DisableMigration {
		caps |= 1 << caskpb.Capability_CAPABILITY_MIGRATION
	}
	return caps
}

// reject answers a hello with a refusal and closes the connection once the
// dialer has read it (or after a short grace).
func (m *Manager) reject(conn *transport.Conn, ctrl *transport.Stream, reason caskpb.RejectReason, detail string) {
	b, _ := proto.Marshal(&caskpb.DistWelcome{Accepted: false, Reason: reason, Detail: detail, Node: m.name})
	ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := ctrl.Write(transport.AppendFrame(nil, b)); err == nil {
		ctrl.Close()
		select {
		case <-conn.Context().Done():
		case <-time.After(time.Second):
		case <-m.ctx.Done():
		}
	}
	conn.CloseWithError(transport.CodeHandshakeFailed, "dist handshake rejected: "+reason.String())
}

// dialResult is what a connect goroutine reports to its controller.
type dialResult struct {
	seq     uint64
	conn    *transport.Conn
	ctrl    *transport.Stream
	br      *bufio.Reader
	welcome *caskpb.DistWelcome
	err     error
}

// dial resolves node, dials its addresses in turn and runs the dist
// handshake as the dialer.
func (m *Manager) dial(ctx context.Context, node string) *dialResult {
	addrs, err := m.resolver.Resolve(ctx, node)
	if err != nil {
		return &dialResult{err: err}
	}
	var conn *transport.Conn
	var errs []error
	for _, addr := range addrs {
		// The identity handshake refuses a peer that is not node before
		// trusting any key of it.
		conn, err = m.dialAddr(identity.WithExpectedPeer(ctx, node), node, addr)
		if err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	if conn == nil {
		return &dialResult{err: fmt.Errorf("%w: %w", ErrConnectFailed, errors.Join(errs...))}
	}
	res, err := m.handshakeOutbound(ctx, conn, node)
	if err != nil {
		conn.CloseWithError(transport.CodeHandshakeFailed, err.Error())
		return &dialResult{err: err}
	}
	return res
}

func (m *Manager) handshakeOutbound(ctx context.Context, conn *transport.Conn, node string) (*dialResult, error) {
	if id := conn.Identity().Node; id != "" && id != node {
		return nil, fmt.Errorf("%w: authenticated peer is %s", ErrConnectFailed, id)
	}
	ctrl, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: open control stream: %w", ErrConnectFailed, err)
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetDeadline(deadline)
	b, _ := proto.Marshal(&caskpb.DistHello{
		Node: m.name, Incarnation: m.inc, MinVersion: MinProtocolVersion, MaxVersion: MaxProtocolVersion,
		Capabilities: m.capabilities(), ToNode: node, MaxMessageSize: uint32(m.cfg.MaxMessageSize),
	})
	if _, err := ctrl.Write(transport.AppendFrame(nil, b)); err != nil {
		return nil, fmt.Errorf("%w: write hello: %w", ErrConnectFailed, err)
	}
	br := bufio.NewReaderSize(ctrl, 16<<10)
	frame, err := transport.ReadFrame(br, nil, maxHandshakeFrame)
	if err != nil {
		return nil, fmt.Errorf("%w: read welcome: %w", ErrConnectFailed, err)
	}
	var w caskpb.DistWelcome
	if err := proto.Unmarshal(frame, &w); err != nil {
		return nil, fmt.Errorf("%w: %w: welcome: %v", ErrConnectFailed, ErrProtocol, err)
	}
	if !w.GetAccepted() {
		return &dialResult{conn: conn, welcome: &w, err: fmt.Errorf("%w: %s: %s", ErrRejected, w.GetReason(), w.GetDetail())}, nil
	}
	if w.GetNode() != node {
		return nil, fmt.Errorf("%w: welcome from %q", ErrConnectFailed, w.GetNode())
	}
	if v := w.GetVersion(); v < MinProtocolVersion || v > MaxProtocolVersion {
		return nil, fmt.Errorf("%w: peer chose version %d", ErrConnectFailed, v)
	}
	if w.GetIncarnation() == 0 {
		return nil, fmt.Errorf("%w: zero incarnation", ErrConnectFailed)
	}
	ctrl.SetDeadline(time.Time{})
	return &dialResult{conn: conn, ctrl: ctrl, br: br, welcome: &w}, nil
}

// addrString formats an address for logs.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
