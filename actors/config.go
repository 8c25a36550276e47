package actors

import (
	"errors"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/metric"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/fielderr"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/transport"
)

// Config configures a node: one tree with the node-wide fields at the top
// and a section per layer below. Name is the only required field; every
// zero field means the default documented on it (docs/configuration.md
// lists them all). Each section's package owns its defaults:
// WithDefaults fills the whole tree and Validate checks it, naming a bad
// field by its path (Config.Transport.KeepAlivePeriod).
//
// The node-wide fields are set once, here. actors.Start copies them into
// the sections (transport.Config.DataDir and DisableMigration,
// dist.Config.Name, Incarnation, AdvertiseAddr and DisableMigration) and builds
// transport.Config.Authenticator from the identity fields: leave those
// section fields zero. A section's Logger and MeterProvider, when nil,
// are the node's.
type Config struct {
	// Name is the node's name, name@host. PIDs of this node carry it as
	// their Address.
	Name string
	// DataDir keeps the node's TLS material (tls/) and its identity
	// (keys/: node.key, node.pub and the trusted peer keys in trusted/):
	// a persistent identity, which peers pin. Empty keeps everything in
	// memory: a fresh, ephemeral identity at every Start, which the node
	// announces and its peers do not pin, so a restart without a DataDir
	// is admitted too (docs/security.md, Restarts).
	DataDir string
	// TrustMode says what the node does with a peer key it holds no
	// trusted key for: TrustOnFirstUse (the default) records it,
	// TrustStrict rejects the peer. A key that differs from the trusted
	// one is rejected in both modes (docs/security.md).
	TrustMode TrustMode
	// ClusterSecret is the secret every node of the cluster shares (as
	// Erlang's cookie): each side of a connection proves it knows it
	// during the identity handshake, on top of its signature, and a peer
	// that cannot is refused with identity.ErrClusterSecret. Empty means
	// the default, resolved once at Start: the environment variable
	// CASK_COOKIE, else the file cask/cookie under os.UserConfigDir(),
	// created with a random value (mode 0600) on first use. So the nodes
	// one user runs on one machine form one cluster with no
	// configuration; give the others the same secret (docs/security.md).
	ClusterSecret []byte
	// OpenCluster is the explicit opt-out of admission by cluster secret:
	// no secret is resolved, proved or checked, so every node that can
	// reach the UDP port and passes TrustMode is admitted (trust on first
	// use by default). Only for networks where every reachable node is
	// trusted; it cannot be combined with ClusterSecret.
	OpenCluster bool
	// FirstContactRate and FirstContactBurst bound how fast names this
	// node holds no trusted key for are admitted: a token bucket of
	// FirstContactBurst tokens refilled at FirstContactRate per second,
	// one per new name that passed every other check. A new name that
	// finds it empty is refused with identity.ErrFirstContactLimit.
	// Defaults identity.DefaultFirstContactRate (20/s) and
	// identity.DefaultFirstContactBurst (100).
	FirstContactRate  float64
	FirstContactBurst int
	// MaxTrustedKeys caps the peer keys trust on first use records (in
	// DataDir/keys/trusted/, or in memory): once that many are held, a
	// new name is refused with identity.ErrFirstContactLimit until an
	// operator removes pins or trusts the key with TrustPeer. Default
	// identity.DefaultMaxTrustedKeys (4096).
	MaxTrustedKeys int
	// AdvertiseAddr is the "host:port" peers should dial to reach this
	// node; the dist handshake and membership messages carry it, so a
	// node that knows one contact's address finds the rest. Empty means
	// the bound address (Transport.ListenAddr) when it is dialable; a
	// node bound to 0.0.0.0 or [::] advertises nothing and its peers use
	// the source address they see (docs/membership.md, "How nodes find
	// each other"). Set it behind NAT or port mapping.
	AdvertiseAddr string
	// DisableMigration forbids migrating this node's connections: its own
	// Migrate requests fail, and peers are told in the dist handshake not
	// to migrate theirs.
	DisableMigration bool
	// Incarnation overrides the random incarnation (tests only).
	Incarnation dist.Incarnation
	// Logger receives structured logs of every layer; nil means
	// slog.Default().
	Logger *slog.Logger
	// MeterProvider receives the node's OpenTelemetry metrics: the cask.*
	// instruments of the dist and membership layers (docs/observability.md)
	// and protoactor's own actor metrics (protoactor_*). nil means none,
	// at no cost on the message path. protoactor takes its meters from
	// OpenTelemetry's global provider, so Start also installs this one
	// with otel.SetMeterProvider; in a process that runs several nodes
	// with different providers, protoactor's instruments of an actor go
	// to the provider that was global when the actor was spawned (their
	// address attribute names the node).
	MeterProvider metric.MeterProvider
	// DisableActorMetrics keeps protoactor's own actor metrics off while
	// MeterProvider is set: they time every message every actor receives
	// and cost about two thirds of small-message throughput
	// (docs/observability.md, "Cost"); Cask's cask.* instruments cost a
	// few percent and stay on.
	DisableActorMetrics bool

	// Transport configures the QUIC transport: ListenAddr or Adapter,
	// IdleTimeout, KeepAlivePeriod, HandshakeTimeout, stream and
	// handshake limits.
	Transport transport.Config
	// Dist configures the dist layer: discovery (Peers, DiscoveryDir,
	// DisableDNS, DiscoveryPort), connect and message limits, data
	// streams, write buffering, user streams, reaping and shutdown.
	Dist dist.Config
	// Membership configures the HyParView membership actor (contact
	// nodes, view sizes, shuffle period).
	Membership membership.Config
}

// WithDefaults returns c with the node-wide fields copied into the
// sections that need them and every zero field set to its default. The
// defaults themselves belong to the sections' packages.
func (c Config) WithDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	nodeLog := c.Logger.With("node", c.Name)

	t := c.Transport
	if t.DataDir == "" {
		t.DataDir = c.DataDir
	}
	t.DisableMigration = t.DisableMigration || c.DisableMigration
	if t.Logger == nil {
		t.Logger = nodeLog
	}
	c.Transport = t.WithDefaults()

	d := c.Dist
	if d.Name == "" {
		d.Name = c.Name
	}
	if d.Incarnation == 0 {
		d.Incarnation = c.Incarnation
	}
	if d.AdvertiseAddr == "" {
		d.AdvertiseAddr = c.AdvertiseAddr
	}
	d.DisableMigration = d.DisableMigration || c.DisableMigration
	if d.Logger == nil {
		d.Logger = c.Logger // dist adds node=<name> itself
	}
	if d.MeterProvider == nil {
		d.MeterProvider = c.MeterProvider
	}
	c.Dist = d.WithDefaults()

	m := c.Membership
	if m.Logger == nil {
		m.Logger = nodeLog
	}
	if m.MeterProvider == nil {
		m.MeterProvider = c.MeterProvider
	}
	c.Membership = m.WithDefaults()
	return c
}

// Validate reports whether c, with its defaults filled in, is usable:
// the node name, that the sections agree with the node-wide fields, and
// each section. Every problem names its field by path, e.g.
// "actors: Config.Transport.KeepAlivePeriod 5s must be below IdleTimeout
// 5s".
func (c Config) Validate() error {
	if err := dist.ValidateNodeName(c.Name); err != nil {
		return fmt.Errorf("actors: %w", fielderr.Wrap("Config.Name", err))
	}
	c = c.WithDefaults()
	var errs []error
	nodeWide := func(path string, ok bool, top string) {
		if !ok {
			errs = append(errs, fielderr.New(path, "differs from %s; set %s only", top, top))
		}
	}
	nodeWide("Config.Transport.DataDir", c.Transport.DataDir == c.DataDir, "Config.DataDir")
	nodeWide("Config.Transport.DisableMigration", c.Transport.DisableMigration == c.DisableMigration, "Config.DisableMigration")
	nodeWide("Config.Dist.Name", c.Dist.Name == c.Name, "Config.Name")
	nodeWide("Config.Dist.Incarnation", c.Dist.Incarnation == c.Incarnation, "Config.Incarnation")
	nodeWide("Config.Dist.AdvertiseAddr", c.Dist.AdvertiseAddr == c.AdvertiseAddr, "Config.AdvertiseAddr")
	nodeWide("Config.Dist.DisableMigration", c.Dist.DisableMigration == c.DisableMigration, "Config.DisableMigration")
	if c.OpenCluster && len(c.ClusterSecret) > 0 {
		errs = append(errs, fielderr.New("Config.OpenCluster", "is set together with Config.ClusterSecret; an open cluster has no secret"))
	}
	if c.FirstContactRate < 0 {
		errs = append(errs, fielderr.New("Config.FirstContactRate", "%v must not be negative", c.FirstContactRate))
	}
	if c.FirstContactBurst < 0 {
		errs = append(errs, fielderr.New("Config.FirstContactBurst", "%d must not be negative", c.FirstContactBurst))
	}
	if c.MaxTrustedKeys < 0 {
		errs = append(errs, fielderr.New("Config.MaxTrustedKeys", "%d must not be negative", c.MaxTrustedKeys))
	}
	if c.Dist.MaxPeers <= c.Membership.ActiveSize {
		errs = append(errs, fielderr.New("Config.Dist.MaxPeers", "%d leaves no room beyond the active view (Config.Membership.ActiveSize %d)",
			c.Dist.MaxPeers, c.Membership.ActiveSize))
	}
	if c.Transport.Authenticator != nil {
		errs = append(errs, fielderr.New("Config.Transport.Authenticator",
			"is set by actors.Start from Config.TrustMode, Config.ClusterSecret and Config.OpenCluster; leave it nil"))
	}
	errs = append(errs,
		fielderr.Under("Config.Transport", c.Transport.Validate()),
		fielderr.Under("Config.Dist", c.Dist.Validate()),
		fielderr.Under("Config.Membership", c.Membership.Validate()),
	)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("actors: %w", err)
	}
	return nil
}
