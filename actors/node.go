package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	"go.opentelemetry.io/otel"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// Node is one running Cask node: a protoactor actor system whose PIDs
// carry the node name, its QUIC transport and its dist layer.
type Node struct {
	cfg    Config
	system *actor.ActorSystem
	tr     *transport.Transport
	dist   *dist.Manager
	log    *slog.Logger
	keys   *identity.KeyStore // identity and trusted keys (identity.go)
	// membership is the HyParView actor (see membership.go).
	membership *membership.Membership

	stopOnce sync.Once
	stopErr  error

	// The debug page's collector (debug.go), started by the first
	// DebugHandler call; debugMu guards these against Stop.
	debugMu      sync.Mutex
	debugPID     *actor.PID
	debugSub     *eventstream.Subscription
	debugStopped bool
}

// Start starts a node: it fills cfg's defaults and validates it, opens
// the UDP socket, starts the actor system, the dist layer and the
// membership actor, and writes the node's endpoint file when
// Dist.DiscoveryDir is set. ctx bounds start-up only.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := cfg.Logger.With("node", cfg.Name)
	auth, err := newAuthenticator(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("actors: %w", err)
	}
	tcfg := cfg.Transport
	tcfg.Authenticator = auth
	tr, err := transport.New(tcfg)
	if err != nil {
		return nil, fmt.Errorf("actors: %w", err)
	}
	opts := []actor.ConfigOption{actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(atLeast{Handler: logger.Handler(), min: slog.LevelWarn}).With("lib", "protoactor")
	})}
	if cfg.MeterProvider != nil && !cfg.DisableActorMetrics {
		// protoactor's instruments come from the global provider
		// (otel.Meter); its option only turns them on.
		otel.SetMeterProvider(cfg.MeterProvider)
		opts = append(opts, actor.WithMetricProviders(cfg.MeterProvider))
	}
	system := actor.NewActorSystem(opts...)
	system.ProcessRegistry.Address = cfg.Name
	dm, err := dist.New(system, tr, cfg.Dist)
	if err != nil {
		system.Shutdown()
		return nil, fmt.Errorf("actors: %w", err)
	}
	// Anonymous PIDs of a restarted node must not collide with those of
	// its earlier incarnation: start the id sequence at a value derived
	// from the incarnation, so old PIDs resolve to nothing (dead letters).
	system.ProcessRegistry.SequenceID = (uint64(dm.Incarnation()) & 0xffffffff) << 24
	if err := tr.Start(); err != nil {
		system.Shutdown()
		return nil, fmt.Errorf("actors: start transport: %w", err)
	}
	if err := dm.Start(); err != nil {
		tr.Close()
		system.Shutdown()
		return nil, fmt.Errorf("actors: start dist: %w", err)
	}
	n := &Node{cfg: cfg, system: system, tr: tr, dist: dm, log: logger, keys: auth.Keys()}
	if err := n.startMembership(); err != nil {
		n.Stop()
		return nil, err
	}
	if cfg.Dist.DiscoveryDir != "" {
		if err := dist.WriteEndpointFile(cfg.Dist.DiscoveryDir, cfg.Name, tr.Addr()); err != nil {
			n.Stop()
			return nil, fmt.Errorf("actors: write endpoint file: %w", err)
		}
	}
	logger.Info("node started", "addr", tr.Addr().String(), "incarnation", dm.Incarnation())
	return n, nil
}

// Stop says goodbye to every peer, stops the dist layer, the transport and
// the actor system, and waits for every goroutine the node started. It is
// safe to call more than once.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		n.stopDebug()
		if n.cfg.Dist.DiscoveryDir != "" {
			dist.RemoveEndpointFile(n.cfg.Dist.DiscoveryDir, n.cfg.Name, n.tr.Addr())
		}
		err0 := n.stopMembership()
		err1 := n.dist.Stop()
		err2 := n.tr.Close()
		n.system.Shutdown()
		n.stopErr = errors.Join(err0, err1, err2)
		n.log.Info("node stopped")
	})
	return n.stopErr
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr is the node's UDP address.
func (n *Node) Addr() net.Addr { return n.tr.Addr() }

// Incarnation is this run's incarnation number.
func (n *Node) Incarnation() dist.Incarnation { return n.dist.Incarnation() }

// System is the node's protoactor actor system.
func (n *Node) System() *actor.ActorSystem { return n.system }

// Root is the actor system's root context.
func (n *Node) Root() *actor.RootContext { return n.system.Root }

// DistPID is the PID of the dist manager actor, for the actor-message
// forms of the API (dist.Connect, dist.Spawn, dist.MonitorNode,
// dist.MigratePeer, ...).
func (n *Node) DistPID() *actor.PID { return n.dist.PID() }

// Connect opens a session to peer (through discovery) unless one is up,
// and waits until it is up or failed.
func (n *Node) Connect(ctx context.Context, peer string) error { return n.dist.Connect(ctx, peer) }

// Disconnect closes the session to peer on purpose, as Erlang's
// disconnect_node: monitors get dist.NodeDown{disconnected}, watches
// across it end with Terminated, the peer sees NodeDown{peer_shutdown},
// and any reconnect backoff for peer is forgotten. The next send,
// Connect or SpawnRemote opens a new session. It fails with
// dist.ErrNotConnected when no session was up.
func (n *Node) Disconnect(ctx context.Context, peer string) error {
	return n.dist.Disconnect(ctx, peer)
}

// Nodes lists every node with a live session whose connection is up,
// sorted (a session waiting for a new connection is not listed).
func (n *Node) Nodes() []string { return n.dist.Nodes() }

// PeerInfo returns a snapshot of every peer the node holds an endpoint
// for, sorted (dist.Manager.PeerInfo): state, session, path statistics,
// queue and, with Config.Dist.CountTraffic or a MeterProvider, traffic
// counts. It asks no actor and never waits for the network.
func (n *Node) PeerInfo() []dist.PeerInfo { return n.dist.PeerInfo() }

// MonitorNode sends dist.NodeUp, dist.NodeUnreachable (the connection was
// lost, the session waits for a new one), dist.NodeReachable (it resumed)
// and dist.NodeDown for peer (every peer when empty) to watcher, in order.
// If the session is up already, NodeUp is sent at once (and
// NodeUnreachable if its connection is lost right then); each event
// reaches a monitor once.
func (n *Node) MonitorNode(peer string, watcher *actor.PID) { n.dist.MonitorNode(peer, watcher) }

// DemonitorNode removes a monitor set with MonitorNode.
func (n *Node) DemonitorNode(peer string, watcher *actor.PID) { n.dist.DemonitorNode(peer, watcher) }

// RegisterKind makes props spawnable by peers under kind. By default
// any admitted peer may spawn it; dist.AllowSpawnBy(nodes...) limits
// that to the nodes named.
func (n *Node) RegisterKind(kind string, props *actor.Props, opts ...dist.KindOption) error {
	return n.dist.RegisterKind(kind, props, opts...)
}

// SpawnRemote spawns an actor of a kind registered on peer, named name
// (empty: generated), and returns its PID. dist.SpawnLink(pid) and
// dist.SpawnMonitor(pid) link it with, or make it watched by, an actor of
// this node before it handles its first message.
func (n *Node) SpawnRemote(ctx context.Context, peer, kind, name string, opts ...dist.SpawnOption) (*actor.PID, error) {
	return n.dist.SpawnRemote(ctx, peer, kind, name, opts...)
}

// Link links actors a and b, at least one of them on this node, as
// Erlang's link/1: when either exits abnormally (failure, shutdown,
// noconnection, noproc) the other is stopped, or gets *dist.Exited if it
// was built with TrapExits. See docs/dist.md, "Links".
func (n *Node) Link(a, b *actor.PID) error { return n.dist.Link(a, b) }

// Unlink removes the link between a and b.
func (n *Node) Unlink(a, b *actor.PID) error { return n.dist.Unlink(a, b) }

// TrapExits returns a copy of props whose actors trap exits: the exit of
// an actor linked with them arrives as a *dist.Exited message instead of
// stopping them (Erlang's process_flag(trap_exit, true)).
func TrapExits(props *actor.Props) *actor.Props { return dist.TrapExits(props) }

// SessionStats returns what the sessions with peer did: sessions,
// resumptions after a lost connection, messages dead-lettered when a
// session ended, bytes not yet acknowledged (docs/dist.md, "Sessions").
func (n *Node) SessionStats(peer string) dist.SessionStats { return n.dist.SessionStats(peer) }

// Pin keeps the session to peer open against idle reaping until Unpin.
func (n *Node) Pin(peer string) { n.dist.Pin(peer) }

// Unpin releases one Pin.
func (n *Node) Unpin(peer string) { n.dist.Unpin(peer) }
