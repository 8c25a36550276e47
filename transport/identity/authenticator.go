package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/cask-p2p/cask/transport"
)

// Identity handshake versions and defaults (docs/security.md).
const (
	// MinVersion and MaxVersion bound the identity handshake versions
	// this build speaks.
	MinVersion = 1
	MaxVersion = 1
	// DefaultFreshnessWindow is the default Config.FreshnessWindow: the
	// longest a peer may take to answer a challenge.
	DefaultFreshnessWindow = 5 * time.Second
	// RejectGrace bounds how long a node that rejects a peer waits for the
	// peer to read the REJECT and close before it closes itself (at most
	// half the handshake time left).
	RejectGrace = 500 * time.Millisecond
	// DefaultFirstContactRate is the default Config.FirstContactRate: new
	// peer names admitted per second, on average.
	DefaultFirstContactRate = 20
	// DefaultFirstContactBurst is the default Config.FirstContactBurst:
	// new peer names admitted at once.
	DefaultFirstContactBurst = 100
	// DefaultMaxTrustedKeys is the default Config.MaxTrustedKeys: the
	// most trusted keys a node holds before trust on first use stops
	// admitting new names.
	DefaultMaxTrustedKeys = 4096
)

// TrustMode says what a node does with a key it has no trusted key for.
type TrustMode int

const (
	// TrustOnFirstUse (the default) trusts the first key a node name
	// presents and records it; later connections must present that key.
	TrustOnFirstUse TrustMode = iota
	// TrustStrict rejects every key not recorded beforehand (KeyStore.Trust
	// or a file under keys/trusted/).
	TrustStrict
)

func (m TrustMode) String() string {
	switch m {
	case TrustOnFirstUse:
		return "tofu"
	case TrustStrict:
		return "strict"
	}
	return fmt.Sprintf("trust_mode(%d)", int(m))
}

// Config configures an Authenticator. Zero fields mean the documented
// defaults.
type Config struct {
	// Name is this node's name (name@host, see ValidateNodeName). Required.
	Name string
	// Keys holds this node's key pair and its trusted keys. Required.
	Keys *KeyStore
	// Trust is the trust mode. Default TrustOnFirstUse.
	Trust TrustMode
	// ClusterSecret, when set, must be shared by every node: each proves
	// it knows it (an HMAC over the channel binding), in addition to the
	// signature. Empty means no cluster secret.
	ClusterSecret []byte
	// FirstContactRate and FirstContactBurst bound how fast names this
	// node holds no trusted key for are admitted (a token bucket: up to
	// FirstContactBurst at once, refilled at FirstContactRate per second).
	// Only a peer that passed every other check, the cluster secret
	// included, takes a token; one that finds the bucket empty is refused
	// with ErrFirstContactLimit and may try again later. Defaults
	// DefaultFirstContactRate and DefaultFirstContactBurst.
	FirstContactRate  float64
	FirstContactBurst int
	// MaxTrustedKeys caps the keys trust on first use records: once Keys
	// holds this many trusted keys, a name it holds none for is refused
	// with ErrFirstContactLimit. Explicit KeyStore.Trust is not limited.
	// Default DefaultMaxTrustedKeys.
	MaxTrustedKeys int
	// FreshnessWindow bounds the time from issuing a challenge to receiving
	// its response, on this node's monotonic clock. Default
	// DefaultFreshnessWindow.
	FreshnessWindow time.Duration
	// Now reads the clock; its readings must carry Go's monotonic clock
	// (as time.Now's do). Default time.Now. Tests inject their own.
	Now func() time.Time
	// Rand is the source of challenge nonces. Default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Authenticator is Cask's transport.Authenticator: the Ed25519 mutual
// identity handshake, bound to the connection's TLS session, with TOFU or
// strict trust (docs/security.md). One serves every connection of a node;
// it is safe for concurrent use.
type Authenticator struct {
	cfg          Config
	origin       time.Time // origin of challenge timestamps
	log          *slog.Logger
	firstContact *tokenBucket
	refusals     *logLimiter
}

var _ transport.Authenticator = (*Authenticator)(nil)

// New checks cfg and fills its defaults. It has no side effects.
func New(cfg Config) (*Authenticator, error) {
	if err := ValidateNodeName(cfg.Name); err != nil {
		return nil, fmt.Errorf("identity: Config.Name: %w", err)
	}
	if cfg.Keys == nil {
		return nil, errors.New("identity: Config.Keys is required")
	}
	switch cfg.Trust {
	case TrustOnFirstUse, TrustStrict:
	default:
		return nil, fmt.Errorf("identity: Config.Trust: unknown mode %d", int(cfg.Trust))
	}
	if cfg.FreshnessWindow < 0 {
		return nil, fmt.Errorf("identity: Config.FreshnessWindow %v is negative", cfg.FreshnessWindow)
	}
	if cfg.FreshnessWindow == 0 {
		cfg.FreshnessWindow = DefaultFreshnessWindow
	}
	switch {
	case cfg.FirstContactRate < 0:
		return nil, fmt.Errorf("identity: Config.FirstContactRate %v is negative", cfg.FirstContactRate)
	case cfg.FirstContactBurst < 0:
		return nil, fmt.Errorf("identity: Config.FirstContactBurst %d is negative", cfg.FirstContactBurst)
	case cfg.MaxTrustedKeys < 0:
		return nil, fmt.Errorf("identity: Config.MaxTrustedKeys %d is negative", cfg.MaxTrustedKeys)
	}
	if cfg.FirstContactRate == 0 {
		cfg.FirstContactRate = DefaultFirstContactRate
	}
	if cfg.FirstContactBurst == 0 {
		cfg.FirstContactBurst = DefaultFirstContactBurst
	}
	if cfg.MaxTrustedKeys == 0 {
		cfg.MaxTrustedKeys = DefaultMaxTrustedKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.ClusterSecret = bytes.Clone(cfg.ClusterSecret)
	now := cfg.Now()
	return &Authenticator{
		cfg: cfg, origin: now, log: cfg.Logger,
		firstContact: newTokenBucket(cfg.FirstContactRate, cfg.FirstContactBurst, now),
		refusals:     newLogLimiter(RefusalLogInterval, refusalLogPeers),
	}, nil
}

// Keys is the authenticator's KeyStore.
func (a *Authenticator) Keys() *KeyStore { return a.cfg.Keys }

type expectedPeerKey struct{}

// WithExpectedPeer returns a ctx for transport.Transport.Dial that tells
// the Authenticator which node name the dialer means to reach: a peer that
// authenticates as another node fails with ErrWrongPeer before any key of
// it is trusted.
func WithExpectedPeer(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, expectedPeerKey{}, node)
}

func expectedPeer(ctx context.Context) string {
	s, _ := ctx.Value(expectedPeerKey{}).(string)
	return s
}

// Authenticate runs the identity handshake on c (see
// transport.Authenticator and the package documentation). A failure is an
// *AuthError; unless the peer already rejected this node, the peer is sent
// a REJECT with the reason before Authenticate returns. Failures are
// logged here, at most once per peer per RefusalLogInterval (the
// AuthError says so with Logged, and the transport logs it at debug
// level only).
func (a *Authenticator) Authenticate(ctx context.Context, c *transport.Conn, role transport.Role) (transport.Identity, error) {
	h := &handshake{a: a, c: c, role: role, peer: expectedPeer(ctx)}
	if role == transport.RoleDialer {
		h.expected = h.peer
	}
	id, err := h.run(ctx)
	if err == nil {
		return id, nil
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		ae = &AuthError{Peer: h.peer, Err: err}
		err = ae
	}
	if !ae.Remote && h.s != nil && c.Context().Err() == nil && ctx.Err() == nil {
		h.reject(ctx, ae)
	}
	a.logFailure(c, ae)
	return transport.Identity{}, err
}

// logFailure logs a failed handshake unless a line about the same peer
// (by name, or by address when it gave none) was logged less than
// RefusalLogInterval ago.
func (a *Authenticator) logFailure(c *transport.Conn, ae *AuthError) {
	key := ae.Peer
	if key == "" {
		key = "addr " + c.RemoteAddr().String()
	}
	ok, suppressed := a.refusals.allow(key, a.cfg.Now())
	if !ok {
		return
	}
	msg := "identity: refused peer"
	if ae.Remote {
		msg = "identity: peer refused this node"
	}
	args := []any{"remote", c.RemoteAddr().String(), "err", ae}
	if ae.Peer != "" {
		args = append([]any{"peer", ae.Peer}, args...)
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	a.log.Warn(msg, args...)
}
