package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cask-p2p/cask/internal/fielderr"
)

// ALPN is the TLS application protocol of Cask. A peer offering anything
// else is refused during the TLS handshake.
const ALPN = "cask/1"

// serverName is the TLS server name every node presents and dials.
const serverName = "cask"

// Defaults for Config: a zero field means the constant below.
const (
	DefaultListenAddr      = "127.0.0.1:0"
	DefaultIdleTimeout     = 5 * time.Second
	DefaultKeepAlivePeriod = 1 * time.Second
	// KeepAliveDivisor: when DefaultKeepAlivePeriod is not below the
	// configured IdleTimeout, the keep-alive default is
	// IdleTimeout/KeepAliveDivisor, so a quiet path sends more than one
	// keep-alive per idle timeout.
	KeepAliveDivisor             = 3
	DefaultHandshakeTimeout      = 5 * time.Second
	DefaultMaxIncomingStreams    = 1000
	DefaultMaxIncomingUniStreams = 1000
	DefaultMaxPendingHandshakes  = 64
	// DefaultFirstStreamTimeout: an inbound peer opens the identity
	// handshake's stream within a round trip of the QUIC handshake; one
	// that has not after this long is dropped.
	DefaultFirstStreamTimeout = 1 * time.Second
)

// Flow-control windows handed to quic-go. They are generous so one
// connection per peer can carry bulk traffic at loopback/LAN speeds.
const (
	InitialStreamReceiveWindow     = 1 << 20  // 1 MiB
	MaxStreamReceiveWindow         = 16 << 20 // 16 MiB
	InitialConnectionReceiveWindow = 4 << 20  // 4 MiB
	MaxConnectionReceiveWindow     = 64 << 20 // 64 MiB
)

// Config configures a Transport. The zero value of every field means the
// documented default; WithDefaults fills them in and Validate checks the
// result. Inside actors.Config (the Transport section) DataDir,
// DisableMigration and Authenticator are set by actors.Start from the
// node-wide fields; the section's Logger, when nil, is the node's.
type Config struct {
	// Adapter yields the node's socket. Nil means UDPAdapter{Addr: ListenAddr}.
	Adapter SocketAdapter
	// ListenAddr is used only when Adapter is nil. Default DefaultListenAddr.
	ListenAddr string
	// DataDir, when set, keeps the node's TLS certificate and key in
	// DataDir/tls/ (cert.pem, key.pem with mode 0600) so they survive a
	// restart. Empty means a fresh certificate in memory at every Start.
	DataDir string
	// IdleTimeout: a peer silent for this long is declared dead (its
	// connections end with ErrIdleTimeout). Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// KeepAlivePeriod must be below IdleTimeout. Default
	// DefaultKeepAlivePeriod, or IdleTimeout/KeepAliveDivisor when that
	// default is not below IdleTimeout.
	KeepAlivePeriod time.Duration
	// HandshakeTimeout bounds the QUIC handshake and the Authenticator
	// together. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxIncomingStreams caps concurrent bidirectional streams the peer may
	// open. Default DefaultMaxIncomingStreams.
	MaxIncomingStreams int64
	// MaxIncomingUniStreams caps concurrent unidirectional streams the peer
	// may open. Default DefaultMaxIncomingUniStreams.
	MaxIncomingUniStreams int64
	// MaxPendingHandshakes caps inbound connections in admission: from
	// the end of the QUIC handshake until the owner calls Conn.Admitted
	// (authenticating, waiting for Accept, and in the dist handshake).
	// When full, a new connection evicts a silent or over-represented
	// pending one, or is refused; the loser is closed with
	// CodeTooManyHandshakes (docs/security.md, "Handshake floods").
	// Default DefaultMaxPendingHandshakes.
	MaxPendingHandshakes int
	// QlogDir, when set, makes every QUIC connection of this node write a
	// qlog trace (JSON text sequences, RFC 7464) into this directory, one
	// file per connection named <time>_<original destination connection
	// ID>_<client|server>.sqlog, mode 0600. For debugging: a trace records
	// every packet, so it grows with traffic and is never rotated. Tools
	// such as qvis read the files. Empty (the default) writes nothing.
	QlogDir string
	// FirstStreamTimeout: an inbound connection whose peer has opened no
	// stream this long after the QUIC handshake, while the Authenticator
	// runs, is closed with CodeHandshakeFailed. It has no effect without
	// an Authenticator or when not below HandshakeTimeout. Default
	// DefaultFirstStreamTimeout.
	FirstStreamTimeout time.Duration
	// DisableMigration forbids this node's Conn.Migrate (it returns
	// ErrMigrationNotAllowed). quic-go v0.65 has no knob to advertise
	// disable_active_migration to the peer, so the peer learns it through
	// the Cask handshake and calls Conn.SetPeerMigrationDisabled.
	DisableMigration bool
	// Authenticator runs after the QUIC handshake and before a connection
	// is handed out. Nil means none (Identity is zero).
	Authenticator Authenticator
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns a copy of c with every zero field set to its
// default. It is the only place the defaults above are applied.
func (c Config) WithDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.Adapter == nil {
		c.Adapter = UDPAdapter{Addr: c.ListenAddr}
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = DefaultKeepAlivePeriod
		if c.KeepAlivePeriod >= c.IdleTimeout {
			c.KeepAlivePeriod = c.IdleTimeout / KeepAliveDivisor
		}
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxIncomingStreams == 0 {
		c.MaxIncomingStreams = DefaultMaxIncomingStreams
	}
	if c.MaxIncomingUniStreams == 0 {
		c.MaxIncomingUniStreams = DefaultMaxIncomingUniStreams
	}
	if c.MaxPendingHandshakes == 0 {
		c.MaxPendingHandshakes = DefaultMaxPendingHandshakes
	}
	if c.FirstStreamTimeout == 0 {
		c.FirstStreamTimeout = DefaultFirstStreamTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports whether c, with its defaults filled in, is usable. It
// names every bad field relative to Config ("KeepAlivePeriod 5s must be
// below IdleTimeout 5s"); New prefixes "transport: invalid config".
func (c Config) Validate() error {
	c = c.WithDefaults()
	var errs []error
	if c.IdleTimeout < 0 {
		errs = append(errs, fielderr.New("IdleTimeout", "%v is negative", c.IdleTimeout))
	}
	if c.KeepAlivePeriod < 0 {
		errs = append(errs, fielderr.New("KeepAlivePeriod", "%v is negative", c.KeepAlivePeriod))
	}
	if c.KeepAlivePeriod >= c.IdleTimeout {
		errs = append(errs, fielderr.New("KeepAlivePeriod", "%v must be below IdleTimeout %v", c.KeepAlivePeriod, c.IdleTimeout))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fielderr.New("HandshakeTimeout", "%v is negative", c.HandshakeTimeout))
	}
	if c.MaxIncomingStreams < 0 {
		errs = append(errs, fielderr.New("MaxIncomingStreams", "%d is negative", c.MaxIncomingStreams))
	}
	if c.MaxIncomingUniStreams < 0 {
		errs = append(errs, fielderr.New("MaxIncomingUniStreams", "%d is negative", c.MaxIncomingUniStreams))
	}
	if c.MaxPendingHandshakes < 0 {
		errs = append(errs, fielderr.New("MaxPendingHandshakes", "%d is negative", c.MaxPendingHandshakes))
	}
	if c.FirstStreamTimeout < 0 {
		errs = append(errs, fielderr.New("FirstStreamTimeout", "%v is negative", c.FirstStreamTimeout))
	}
	return errors.Join(errs...)
}

// Role says which side of a connection this node is.
type Role int

const (
	// RoleDialer: this node opened the connection (and may migrate it).
	RoleDialer Role = iota + 1
	// RoleAcceptor: the peer opened the connection.
	RoleAcceptor
)

func (r Role) String() string {
	switch r {
	case RoleDialer:
		return "dialer"
	case RoleAcceptor:
		return "acceptor"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Identity is the authenticated identity of a peer, as returned by the
// Authenticator. It is zero when no Authenticator is configured.
type Identity struct {
	Node      string
	PublicKey []byte
}

// Authenticator proves the peer's identity after the QUIC handshake and
// before the connection is handed to the caller of Dial or Accept.
//
// It is called once per connection: for Dial on the dialing goroutine, for
// inbound connections on a goroutine of their own (so a stalled peer never
// blocks others). It may block and may open or accept streams on c, but it
// must return once ctx is done; ctx expires after Config.HandshakeTimeout
// and the connection is closed at that moment, which unblocks any stream
// operation. A non-nil error rejects the peer: the connection is closed with
// CodeAuthFailed, Dial returns the error wrapped, Accept never yields it.
// When the error (or one it wraps) has a method PeerName() string that
// returns a non-empty name, the failure is logged with that peer name;
// when it has a method Logged() bool that returns true, the Authenticator
// logged the failure itself and the transport logs it at debug level only.
// transport/identity implements it: identity.Authenticator.
type Authenticator interface {
	Authenticate(ctx context.Context, c *Conn, role Role) (Identity, error)
}
