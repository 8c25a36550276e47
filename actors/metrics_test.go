package actors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// meter is a MeterProvider read on demand by the test (the SDK's manual
// reader).
type meter struct {
	reader   *sdkmetric.ManualReader
	provider *sdkmetric.MeterProvider
}

func newMeter(t *testing.T) *meter {
	r := sdkmetric.NewManualReader()
	p := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return &meter{reader: r, provider: p}
}

// collect returns every metric the reader holds, by name.
func (m *meter) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := m.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("collect: %v", err)
	}
	out := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			out[mt.Name] = mt
		}
	}
	return out
}

// point finds the data point of metric name whose attributes are exactly
// attrs ("key", "value", ...) and returns its value (a histogram's
// count), or false.
func (m *meter) point(t *testing.T, name string, attrs ...string) (float64, bool) {
	t.Helper()
	want := make([]attribute.KeyValue, 0, len(attrs)/2)
	for i := 0; i+1 < len(attrs); i += 2 {
		want = append(want, attribute.String(attrs[i], attrs[i+1]))
	}
	set := attribute.NewSet(want...)
	mt, ok := m.collect(t)[name]
	if !ok {
		return 0, false
	}
	switch d := mt.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&set) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&set) {
				return float64(p.Value), true
			}
		}
	case metricdata.Gauge[float64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&set) {
				return p.Value, true
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if p.Attributes.Equals(&set) {
				return float64(p.Count), true
			}
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, mt.Data)
	}
	return 0, false
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sink counts the messages it receives.
func sink(t *testing.T, n *actors.Node, got *atomic.Int64) *actor.PID {
	t.Helper()
	pid, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); ok {
			got.Add(1)
		}
	}), "sink")
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestMetricsTwoNodes: the cask.* instruments of two nodes, each with its
// own provider, agree with the traffic between them exactly, and count a
// dead letter, a migration and a reconnect; the path gauges and
// membership views are there; protoactor's actor metrics are on.
func TestMetricsTwoNodes(t *testing.T) {
	secret := []byte("metrics-test")
	mb, ma := newMeter(t), newMeter(t)
	b := startQuiet(t, "b@localhost", actors.Config{ClusterSecret: secret, MeterProvider: mb.provider})
	a := startQuiet(t, "a@localhost", actors.Config{ClusterSecret: secret, MeterProvider: ma.provider,
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{b.Name(): b.Addr().String()}}})
	var gotA, gotB atomic.Int64
	sinkA, sinkB := sink(t, a, &gotA), sink(t, b, &gotB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.Name()); err != nil {
		t.Fatal(err)
	}

	// Whatever the connect itself exchanged, the counters of the two
	// sides must agree: what a sent, b received, and the other way.
	counter := func(m *meter, name, peer string) int64 {
		v, _ := m.point(t, name, "peer", peer)
		return int64(v)
	}
	settled := func(what string) {
		eventually(t, what, func() (bool, string) {
			s := fmt.Sprintf("a→b %d/%d msgs %d/%d bytes, b→a %d/%d msgs %d/%d bytes",
				counter(ma, "cask.messages.sent", "b@localhost"), counter(mb, "cask.messages.received", "a@localhost"),
				counter(ma, "cask.bytes.sent", "b@localhost"), counter(mb, "cask.bytes.received", "a@localhost"),
				counter(mb, "cask.messages.sent", "a@localhost"), counter(ma, "cask.messages.received", "b@localhost"),
				counter(mb, "cask.bytes.sent", "a@localhost"), counter(ma, "cask.bytes.received", "b@localhost"))
			return counter(ma, "cask.messages.sent", "b@localhost") == counter(mb, "cask.messages.received", "a@localhost") &&
				counter(ma, "cask.bytes.sent", "b@localhost") == counter(mb, "cask.bytes.received", "a@localhost") &&
				counter(mb, "cask.messages.sent", "a@localhost") == counter(ma, "cask.messages.received", "b@localhost") &&
				counter(mb, "cask.bytes.sent", "a@localhost") == counter(ma, "cask.bytes.received", "b@localhost"), s
		})
	}
	settled("after connect")
	sentA0, sentB0 := counter(ma, "cask.messages.sent", "b@localhost"), counter(mb, "cask.messages.sent", "a@localhost")
	bytesA0 := counter(ma, "cask.bytes.sent", "b@localhost")

	const n = 200
	remoteB, remoteA := actor.NewPID(b.Name(), sinkB.Id), actor.NewPID(a.Name(), sinkA.Id)
	for i := range n {
		a.Root().Send(remoteB, wrapperspb.String(fmt.Sprint("to b ", i)))
		b.Root().Send(remoteA, wrapperspb.String(fmt.Sprint("to a ", i)))
	}
	eventually(t, "delivery", func() (bool, string) {
		return gotA.Load() == n && gotB.Load() == n, fmt.Sprintf("a got %d, b got %d of %d", gotA.Load(), gotB.Load(), n)
	})
	settled("after the exchange")
	if d := counter(ma, "cask.messages.sent", "b@localhost") - sentA0; d != n {
		t.Errorf("a counted %d messages sent to b, want %d", d, n)
	}
	if d := counter(mb, "cask.messages.sent", "a@localhost") - sentB0; d != n {
		t.Errorf("b counted %d messages sent to a, want %d", d, n)
	}
	// Each frame carries at least the payload ("to b 0" is 6 bytes of
	// string in 8 of protobuf) and the target id.
	if d := counter(ma, "cask.bytes.sent", "b@localhost") - bytesA0; d < 8*n {
		t.Errorf("a counted %d bytes sent to b for %d messages", d, n)
	}

	// A dead letter, by reason and peer.
	a.Root().Send(remoteB, struct{ S string }{"not protobuf"})
	eventually(t, "dead letter", func() (bool, string) {
		v, _ := ma.point(t, "cask.dead_letters", "peer", "b@localhost", "reason", "not_protobuf")
		return v == 1, fmt.Sprintf("cask.dead_letters{peer=b,reason=not_protobuf} = %v", v)
	})

	// The path gauges describe the live session.
	if v, ok := ma.point(t, "cask.path.srtt", "peer", "b@localhost"); !ok || v <= 0 || v > 5 {
		t.Errorf("cask.path.srtt{peer=b} = %v, %v; want a round-trip time in seconds", v, ok)
	}
	if v, ok := ma.point(t, "cask.path.congestion_window", "peer", "b@localhost"); !ok || v <= 0 {
		t.Errorf("cask.path.congestion_window{peer=b} = %v, %v", v, ok)
	}
	if v, ok := ma.point(t, "cask.pending.depth", "peer", "b@localhost"); !ok || v != 0 {
		t.Errorf("cask.pending.depth{peer=b} = %v, %v; want 0 with the session up", v, ok)
	}

	// A migration, counted with its duration.
	if err := a.MigratePeer(ctx, b.Name(), dist.MigrationLocalAddr("127.0.0.2")); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if v, ok := ma.point(t, "cask.migrations", "peer", "b@localhost"); v != 1 {
		t.Errorf("cask.migrations{peer=b} = %v, %v; want 1", v, ok)
	}
	if v, ok := ma.point(t, "cask.migration.duration", "peer", "b@localhost"); v != 1 {
		t.Errorf("cask.migration.duration{peer=b} holds %v, %v samples; want 1", v, ok)
	}

	// A reconnect: the counters survive it and do not go back.
	if v, _ := ma.point(t, "cask.reconnects", "peer", "b@localhost"); v != 0 {
		t.Errorf("cask.reconnects{peer=b} = %v before any reconnect", v)
	}
	before := counter(ma, "cask.messages.sent", "b@localhost")
	if err := a.Disconnect(ctx, b.Name()); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Name()); err != nil {
		t.Fatal(err)
	}
	if v, _ := ma.point(t, "cask.reconnects", "peer", "b@localhost"); v != 1 {
		t.Errorf("cask.reconnects{peer=b} = %v after one reconnect, want 1", v)
	}
	if got := counter(ma, "cask.messages.sent", "b@localhost"); got < before {
		t.Errorf("cask.messages.sent{peer=b} went back from %d to %d over a reconnect", before, got)
	}

	// Membership: a joins through b; both views and events show it.
	if err := a.Join(ctx, b.Name()); err != nil {
		t.Fatalf("join: %v", err)
	}
	eventually(t, "active views", func() (bool, string) {
		va, _ := ma.point(t, "cask.membership.active_view")
		vb, _ := mb.point(t, "cask.membership.active_view")
		return va == 1 && vb == 1, fmt.Sprintf("a %v, b %v", va, vb)
	})
	if _, ok := ma.point(t, "cask.membership.passive_view"); !ok {
		t.Error("cask.membership.passive_view missing")
	}
	if v, _ := ma.point(t, "cask.membership.events", "kind", "peer_up"); v != 1 {
		t.Errorf("cask.membership.events{kind=peer_up} on a = %v, want 1", v)
	}
	if v, _ := ma.point(t, "cask.membership.events", "kind", "joined"); v != 1 {
		t.Errorf("cask.membership.events{kind=joined} on a = %v, want 1", v)
	}

	// protoactor's own instruments reach the provider too.
	if _, ok := ma.collect(t)["protoactor_actor_message_receive_duration_seconds"]; !ok {
		t.Error("protoactor_actor_message_receive_duration_seconds missing: protoactor's metrics are not on")
	}
}

// TestMetricsNoProvider: without a MeterProvider the dist layer keeps no
// counters, so traffic costs nothing extra (and nothing is exported).
func TestMetricsNoProvider(t *testing.T) {
	c := actors.Config{Name: "a@localhost"}.WithDefaults()
	if c.Dist.MeterProvider != nil || c.Membership.MeterProvider != nil {
		t.Fatalf("sections got a provider from a Config without one")
	}
}

// DisableActorMetrics keeps protoactor's per-message instruments off and
// Cask's on.
func TestDisableActorMetrics(t *testing.T) {
	m := newMeter(t)
	n, err := actors.Start(context.Background(), actors.Config{Name: "solo@localhost", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MeterProvider: m.provider, DisableActorMetrics: true, Dist: dist.Config{DisableDNS: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	var got atomic.Int64
	pid := sink(t, n, &got)
	for i := 0; i < 10; i++ {
		n.Root().Send(pid, wrapperspb.String(fmt.Sprint(i)))
	}
	eventually(t, "the sink to get 10 messages", func() (bool, string) {
		return got.Load() == 10, fmt.Sprint(got.Load())
	})
	metrics := m.collect(t)
	for name := range metrics {
		if strings.HasPrefix(name, "protoactor") {
			t.Errorf("protoactor instrument %s with DisableActorMetrics", name)
		}
	}
	if _, ok := metrics["cask.membership.active_view"]; !ok {
		t.Errorf("cask instruments missing with DisableActorMetrics: %v", keys(metrics))
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
