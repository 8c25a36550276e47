package actors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestConfigZeroGetsSectionDefaults(t *testing.T) {
	c := Config{Name: "a@localhost"}.WithDefaults()
	if c.Logger == nil || c.Transport.Logger == nil || c.Dist.Logger == nil || c.Membership.Logger == nil {
		t.Fatal("a logger is nil after WithDefaults")
	}
	tc, dc, mc := c.Transport, c.Dist, c.Membership
	for _, k := range []struct {
		path      string
		got, want any
	}{
		{"Transport.ListenAddr", tc.ListenAddr, transport.DefaultListenAddr},
		{"Transport.IdleTimeout", tc.IdleTimeout, transport.DefaultIdleTimeout},
		{"Transport.KeepAlivePeriod", tc.KeepAlivePeriod, transport.DefaultKeepAlivePeriod},
		{"Transport.HandshakeTimeout", tc.HandshakeTimeout, transport.DefaultHandshakeTimeout},
		{"Transport.MaxIncomingStreams", tc.MaxIncomingStreams, int64(transport.DefaultMaxIncomingStreams)},
		{"Transport.MaxIncomingUniStreams", tc.MaxIncomingUniStreams, int64(transport.DefaultMaxIncomingUniStreams)},
		{"Transport.MaxPendingHandshakes", tc.MaxPendingHandshakes, transport.DefaultMaxPendingHandshakes},
		{"Dist.Name", dc.Name, "a@localhost"},
		{"Dist.DiscoveryPort", dc.DiscoveryPort, dist.DefaultDiscoveryPort},
		{"Dist.DataStreams", dc.DataStreams, dist.DefaultDataStreams},
		{"Dist.MaxMessageSize", dc.MaxMessageSize, dist.DefaultMaxMessageSize},
		{"Dist.PendingLimit", dc.PendingLimit, dist.DefaultPendingLimit},
		{"Dist.ConnectTimeout", dc.ConnectTimeout, dist.DefaultConnectTimeout},
		{"Dist.ReapIdleAfter", dc.ReapIdleAfter, dist.DefaultReapIdleAfter},
		{"Dist.ReapMinAge", dc.ReapMinAge, dist.DefaultReapMinAge},
		{"Dist.WriteBufferLimit", dc.WriteBufferLimit, dist.DefaultWriteBufferLimit},
		{"Dist.MaxUserStreams", dc.MaxUserStreams, dist.DefaultMaxUserStreams},
		{"Dist.UserStreamWindow", dc.UserStreamWindow, dist.DefaultUserStreamWindow},
		{"Dist.MaxPeers", dc.MaxPeers, dist.DefaultMaxPeers},
		{"Dist.ShutdownGrace", dc.ShutdownGrace, dist.DefaultShutdownGrace},
		{"Membership.ActiveSize", mc.ActiveSize, membership.DefaultActiveSize},
		{"Membership.PassiveSize", mc.PassiveSize, membership.DefaultPassiveSize},
		{"Membership.ShufflePeriod", mc.ShufflePeriod, membership.DefaultShufflePeriod},
		{"Membership.BackoffMax", mc.BackoffMax, membership.DefaultBackoffMax},
	} {
		if k.got != k.want {
			t.Errorf("Config.%s = %v, want %v", k.path, k.got, k.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}

	// One keep-alive rule: a third of an IdleTimeout too short for the
	// default period.
	short := Config{Name: "a@localhost", Transport: transport.Config{IdleTimeout: 600 * time.Millisecond}}.WithDefaults()
	if got := short.Transport.KeepAlivePeriod; got != 200*time.Millisecond {
		t.Fatalf("KeepAlivePeriod with IdleTimeout 600ms = %v, want 200ms", got)
	}
}

// knobs is a node configuration with every knob of every section set to
// a value other than its default. The node-wide copies in the sections
// stay zero: Start fills them.
func knobs(t *testing.T) Config {
	return Config{
		Name:             "a@localhost",
		DataDir:          t.TempDir(),
		DisableMigration: true,
		Incarnation:      0x5eed,
		AdvertiseAddr:    "127.0.0.1:4999",
		Logger:           quietLogger,
		MeterProvider:    sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
		Transport: transport.Config{
			ListenAddr:            "127.0.0.1:0",
			IdleTimeout:           3 * time.Second,
			KeepAlivePeriod:       700 * time.Millisecond,
			HandshakeTimeout:      2 * time.Second,
			MaxIncomingStreams:    500,
			MaxIncomingUniStreams: 400,
			MaxPendingHandshakes:  7,
			FirstStreamTimeout:    1500 * time.Millisecond,
			QlogDir:               t.TempDir(),
		},
		Dist: dist.Config{
			Peers:               map[string]string{"b@localhost": "127.0.0.1:1"},
			DiscoveryDir:        t.TempDir(),
			DisableDNS:          true,
			DiscoveryPort:       4999,
			DataStreams:         3,
			MaxMessageSize:      1 << 20,
			PendingLimit:        99,
			ConnectTimeout:      2 * time.Second,
			ReconnectBackoffMin: 50 * time.Millisecond,
			ReconnectBackoffMax: 2 * time.Second,
			Resolvers:           []dist.Resolver{dist.StaticResolver{"c@localhost": "127.0.0.1:4999"}},
			ReapIdleAfter:       -1,
			ReapMinAge:          5 * time.Second,
			WriteBufferLimit:    12345,
			MaxUserStreams:      9,
			UserStreamWindow:    64 << 10,
			MaxPeers:            77,
			MaxLearnedAddrs:     10,
			ShutdownGrace:       300 * time.Millisecond,
			CountTraffic:        true,
			SessionGrace:        20 * time.Second,
			SessionBuffer:       4 << 20,
		},
		Membership: membership.Config{
			ContactNodes:            []string{"b@localhost"},
			ActiveSize:              4,
			PassiveSize:             20,
			ActiveRandomWalkLength:  5,
			PassiveRandomWalkLength: 2,
			ShuffleActive:           2,
			ShufflePassive:          3,
			ShuffleTTL:              4,
			ShufflePeriod:           3 * time.Second,
			MaxFailures:             6,
			BackoffMin:              2 * time.Second,
			BackoffMax:              time.Minute,
			PassiveMaxAge:           time.Hour,
			AntiEntropyPeriod:       7 * time.Second,
			TombstoneTTL:            time.Hour,
			HeartbeatTimeout:        time.Minute,
			ReconnectPeriod:         45 * time.Second,
			Seed:                    42,
			Now:                     time.Now,
		},
	}
}

// nodeWide are the section fields actors.Start sets from the top of the
// tree (or builds, for Authenticator), and the loggers.
var nodeWide = map[string]bool{
	"DataDir": true, "DisableMigration": true, "Authenticator": true,
	"Name": true, "Incarnation": true, "AdvertiseAddr": true, "Logger": true,
	"MeterProvider": true,
}

// TestConfigKnobsAreAllSet keeps knobs complete: a knob added to a
// section must be added there, and so is checked by
// TestConfigKnobsReachLayers.
func TestConfigKnobsAreAllSet(t *testing.T) {
	c := knobs(t)
	for name, section := range map[string]any{"Transport": c.Transport, "Dist": c.Dist, "Membership": c.Membership} {
		v := reflect.ValueOf(section)
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "Adapter" || nodeWide[f.Name] {
				continue
			}
			if v.Field(i).IsZero() {
				t.Errorf("knobs leaves Config.%s.%s zero", name, f.Name)
			}
		}
	}
}

func TestConfigKnobsReachLayers(t *testing.T) {
	in := knobs(t)
	n, err := Start(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()

	sameKnobs(t, "Transport", n.tr.Config(), in.Transport)
	sameKnobs(t, "Dist", n.dist.Config(), in.Dist)
	sameKnobs(t, "Membership", n.membership.Config(), in.Membership)

	tc, dc := n.tr.Config(), n.dist.Config()
	if tc.DataDir != in.DataDir || !tc.DisableMigration || tc.Authenticator == nil {
		t.Errorf("transport got DataDir %q, DisableMigration %v, Authenticator %v", tc.DataDir, tc.DisableMigration, tc.Authenticator)
	}
	if dc.Name != in.Name || dc.Incarnation != in.Incarnation || !dc.DisableMigration || dc.AdvertiseAddr != in.AdvertiseAddr {
		t.Errorf("dist got Name %q, Incarnation %v, DisableMigration %v, AdvertiseAddr %q", dc.Name, dc.Incarnation, dc.DisableMigration, dc.AdvertiseAddr)
	}
	if dc.MeterProvider != in.MeterProvider || n.membership.Config().MeterProvider != in.MeterProvider {
		t.Errorf("MeterProvider reached dist as %v and membership as %v, want %v",
			dc.MeterProvider, n.membership.Config().MeterProvider, in.MeterProvider)
	}
	if got := n.dist.AdvertisedAddr(); got != in.AdvertiseAddr {
		t.Errorf("dist advertises %q, want %q", got, in.AdvertiseAddr)
	}
	if n.Incarnation() != in.Incarnation {
		t.Errorf("Incarnation() = %v, want %v", n.Incarnation(), in.Incarnation)
	}
}

// sameKnobs fails unless every knob of got equals the one of want.
func sameKnobs(t *testing.T, section string, got, want any) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range w.NumField() {
		f := w.Type().Field(i)
		if nodeWide[f.Name] || f.Type.Kind() == reflect.Func || f.Type.Kind() == reflect.Interface {
			continue
		}
		if !reflect.DeepEqual(g.Field(i).Interface(), w.Field(i).Interface()) {
			t.Errorf("Config.%s.%s reached the layer as %v, want %v", section, f.Name, g.Field(i), w.Field(i))
		}
	}
}

func TestConfigInvalidNamesFieldPath(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // the whole error, or the line that names the field
		is   error
	}{
		{Config{Name: "no-host"}, `actors: Config.Name: identity: bad node name: "no-host" (want name@host)`, dist.ErrBadNodeName},
		{Config{Transport: transport.Config{IdleTimeout: 5 * time.Second, KeepAlivePeriod: 5 * time.Second}},
			"actors: Config.Transport.KeepAlivePeriod 5s must be below IdleTimeout 5s", nil},
		{Config{Transport: transport.Config{MaxPendingHandshakes: -1}},
			"actors: Config.Transport.MaxPendingHandshakes -1 is negative", nil},
		{Config{Dist: dist.Config{WriteBufferLimit: -1}}, "actors: Config.Dist.WriteBufferLimit -1 must be positive", nil},
		{Config{Dist: dist.Config{DataStreams: 2000}}, "actors: Config.Dist.DataStreams 2000 out of range 1..1024", nil},
		{Config{Dist: dist.Config{ReconnectBackoffMin: time.Second, ReconnectBackoffMax: 500 * time.Millisecond}},
			"actors: Config.Dist.ReconnectBackoffMax 500ms must not be below ReconnectBackoffMin 1s", nil},
		{Config{Dist: dist.Config{Resolvers: []dist.Resolver{nil}}}, "actors: Config.Dist.Resolvers[0] is nil", nil},
		{Config{Dist: dist.Config{Peers: map[string]string{"nohost": "127.0.0.1:1"}}},
			`actors: Config.Dist.Peers["nohost"]: identity: bad node name: "nohost" (want name@host)`, dist.ErrBadNodeName},
		{Config{Dist: dist.Config{Name: "b@localhost"}}, "actors: Config.Dist.Name differs from Config.Name; set Config.Name only", nil},
		{Config{Transport: transport.Config{DisableMigration: true}},
			"actors: Config.Transport.DisableMigration differs from Config.DisableMigration; set Config.DisableMigration only", nil},
		{Config{Transport: transport.Config{Authenticator: &identity.Authenticator{}}},
			"actors: Config.Transport.Authenticator is set by actors.Start from Config.TrustMode, Config.ClusterSecret and Config.OpenCluster; leave it nil", nil},
		{Config{OpenCluster: true, ClusterSecret: []byte("s")},
			"actors: Config.OpenCluster is set together with Config.ClusterSecret; an open cluster has no secret", nil},
		{Config{Dist: dist.Config{MaxPeers: 5}},
			"actors: Config.Dist.MaxPeers 5 leaves no room beyond the active view (Config.Membership.ActiveSize 5)", nil},
		{Config{AdvertiseAddr: "0.0.0.0:7000"},
			`actors: Config.Dist.AdvertiseAddr "0.0.0.0:7000" is not dialable (unspecified IP)`, nil},
		{Config{MaxTrustedKeys: -1},
			"actors: Config.MaxTrustedKeys -1 must not be negative", nil},
		{Config{Membership: membership.Config{ShufflePeriod: -time.Second}},
			"actors: Config.Membership.ShufflePeriod -1s is negative", membership.ErrInvalidConfig},
		{Config{Membership: membership.Config{ContactNodes: []string{"b@localhost", "x"}}},
			`actors: Config.Membership.ContactNodes[1]: identity: bad node name: "x" (want name@host)`, membership.ErrInvalidConfig},
	} {
		if tc.cfg.Name == "" {
			tc.cfg.Name = "a@localhost"
		}
		err := tc.cfg.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate() = %v\nwant %s", err, tc.want)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%v does not match %v", err, tc.is)
		}
	}

	// Several problems: one line each, each under its path.
	err := Config{Name: "a@localhost",
		Transport: transport.Config{IdleTimeout: -1},
		Dist:      dist.Config{PendingLimit: -1},
	}.Validate()
	for _, want := range []string{"Config.Transport.IdleTimeout -1ns is negative", "Config.Dist.PendingLimit -1 must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a line %q", err, want)
		}
	}

	// Start refuses with the same error and starts nothing.
	bad := Config{Name: "a@localhost", Logger: quietLogger, Dist: dist.Config{MaxUserStreams: -3}}
	if n, err := Start(context.Background(), bad); err == nil {
		n.Stop()
		t.Fatal("Start accepted Dist.MaxUserStreams -3")
	} else if want := "actors: Config.Dist.MaxUserStreams -3 must be positive"; err.Error() != want {
		t.Fatalf("Start: %v, want %s", err, want)
	}
}
