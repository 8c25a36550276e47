package actors

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/transport"
)

// Defaults for Config. A zero field means the default.
const (
	// DefaultListenAddr is the UDP address a node listens on.
	DefaultListenAddr = "127.0.0.1:0"
	// DefaultIdleTimeout: a silent peer is declared lost after this long.
	DefaultIdleTimeout = 5 * time.Second
	// DefaultKeepAlivePeriod keeps an idle connection's path alive.
	DefaultKeepAlivePeriod = time.Second
)

// Config configures a node. Name is the only required field; every zero
// field means the documented default.
type Config struct {
	// Name is the node's name, name@host. PIDs of this node carry it as
	// their Address.
	Name string
	// ListenAddr is the node's UDP address (listener and dialer share the
	// socket). Default 127.0.0.1:0.
	ListenAddr string
	// Adapter, when set, supplies the node's socket instead of a plain UDP
	// socket on ListenAddr: a fault-injection adapter in tests and demos,
	// a relay adapter in production.
	Adapter transport.SocketAdapter
	// DataDir keeps the node's TLS material (tls/) and its identity
	// (keys/: node.key, node.pub and the trusted peer keys in trusted/).
	// Empty keeps everything in memory: a fresh identity at every Start.
	DataDir string
	// TrustMode says what the node does with a peer key it holds no
	// trusted key for: TrustOnFirstUse (the default) records it,
	// TrustStrict rejects the peer. A key that differs from the trusted
	// one is rejected in both modes (docs/security.md).
	TrustMode TrustMode
	// ClusterSecret, when set, must be the same on every node: each side
	// proves it knows it during the identity handshake, on top of its
	// signature. Empty means none.
	ClusterSecret []byte
	// MaxPendingHandshakes caps inbound connections still in the QUIC or
	// identity handshake (transport default 64); more are refused.
	MaxPendingHandshakes int
	// Peers is the static discovery map: node name → UDP address.
	Peers map[string]string
	// DiscoveryDir is a directory of endpoint files; the node writes its
	// own there at Start and removes it at Stop.
	DiscoveryDir string
	// DisableDNS turns off DNS discovery (the last backend of the chain).
	DisableDNS bool
	// DiscoveryPort is the port DNS discovery assumes without SRV records.
	DiscoveryPort int
	// IdleTimeout: a peer silent this long is lost. Default 5 s.
	IdleTimeout time.Duration
	// KeepAlivePeriod: default 1 s; must be below IdleTimeout.
	KeepAlivePeriod time.Duration
	// HandshakeTimeout bounds the QUIC and identity handshakes (transport
	// default when zero).
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds discovery, dial and dist handshake (dist
	// default 5 s).
	ConnectTimeout time.Duration
	// MaxMessageSize caps one encoded message (dist default 16 MiB).
	MaxMessageSize int
	// DataStreams is the data stream pool per connection (dist default 16).
	DataStreams int
	// PendingLimit caps messages queued per peer while connecting.
	PendingLimit int
	// ReapIdleAfter and ReapMinAge tune idle-channel reaping (dist
	// defaults 60 s each); a negative ReapIdleAfter disables it.
	ReapIdleAfter time.Duration
	ReapMinAge    time.Duration
	// ShutdownGrace bounds the goodbye exchange at Stop (dist default 1 s).
	ShutdownGrace time.Duration
	// DisableMigration tells peers not to migrate their connections to
	// this node.
	DisableMigration bool
	// Membership configures the HyParView membership actor (contact
	// nodes, view sizes, shuffle period); zero fields mean the
	// membership package defaults. Its Logger defaults to the node's.
	Membership membership.Config
	// Incarnation overrides the random incarnation (tests only).
	Incarnation uint64
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = DefaultKeepAlivePeriod
		if c.KeepAlivePeriod >= c.IdleTimeout {
			c.KeepAlivePeriod = c.IdleTimeout / 3
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	if err := dist.ValidateNodeName(c.Name); err != nil {
		return fmt.Errorf("actors: Config.Name: %w", err)
	}
	if c.IdleTimeout < 0 || c.KeepAlivePeriod < 0 {
		return fmt.Errorf("actors: IdleTimeout and KeepAlivePeriod must not be negative")
	}
	if c.KeepAlivePeriod >= c.IdleTimeout {
		return fmt.Errorf("actors: KeepAlivePeriod %v must be below IdleTimeout %v", c.KeepAlivePeriod, c.IdleTimeout)
	}
	return nil
}
