package dist_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// setupNode is a node built from the layers (actor system, transport,
// dist manager), so the benchmark can leave the identity handshake out.
type setupNode struct {
	system *actor.ActorSystem
	tr     *transport.Transport
	mgr    *dist.Manager
}

func startSetupNode(b *testing.B, name string, withIdentity bool, peers map[string]string) *setupNode {
	b.Helper()
	log := slog.New(slog.DiscardHandler)
	cfg := transport.Config{Logger: log}
	if withIdentity {
		keys, err := identity.OpenKeyStore("")
		if err != nil {
			b.Fatal(err)
		}
		auth, err := identity.New(identity.Config{Name: name, Keys: keys, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Authenticator = auth
	}
	tr, err := transport.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		b.Fatal(err)
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	system.ProcessRegistry.Address = name
	mgr, err := dist.New(system, tr, dist.Config{Name: name, Peers: peers, DisableDNS: true, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := mgr.Start(); err != nil {
		b.Fatal(err)
	}
	return &setupNode{system: system, tr: tr, mgr: mgr}
}

func (n *setupNode) stop() {
	_ = n.mgr.Stop()
	_ = n.tr.Close()
	n.system.Shutdown()
}

// BenchmarkConnectionSetup measures Connect on a fresh node to a running
// one (discovery from a static map, QUIC handshake, identity handshake,
// dist handshake) on loopback, with and without the Ed25519 identity
// handshake, alternating the two so both see the same machine state. Each
// iteration makes one connection of each kind; run it with
// -benchtime=200x for 200 of each. It reports the p50 and p90 of both and
// the p50 difference.
func BenchmarkConnectionSetup(b *testing.B) {
	const target = "acceptor@localhost"
	kinds := []struct {
		name     string
		identity bool
		took     []time.Duration
		acceptor *setupNode
	}{{name: "ed25519", identity: true}, {name: "none", identity: false}}
	for i := range kinds {
		kinds[i].acceptor = startSetupNode(b, target, kinds[i].identity, nil)
		defer kinds[i].acceptor.stop()
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		for j := range kinds {
			k := &kinds[(i+j)%len(kinds)]
			b.StopTimer()
			d := startSetupNode(b, fmt.Sprintf("dialer%d@localhost", i), k.identity,
				map[string]string{target: k.acceptor.tr.Addr().String()})
			b.StartTimer()
			start := time.Now()
			err := d.mgr.Connect(ctx, target)
			took := time.Since(start)
			b.StopTimer()
			d.stop()
			b.StartTimer()
			if err != nil {
				b.Fatalf("%s connect %d: %v", k.name, i, err)
			}
			k.took = append(k.took, took)
		}
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))].Microseconds())
	}
	for _, k := range kinds {
		b.ReportMetric(p(k.took, 0.5), "p50-µs/"+k.name)
		b.ReportMetric(p(k.took, 0.9), "p90-µs/"+k.name)
	}
	b.ReportMetric(p(kinds[0].took, 0.5)-p(kinds[1].took, 0.5), "p50-µs/identity-cost")
	b.ReportMetric(0, "ns/op") // the time per op mixes both kinds; see the metrics
}
