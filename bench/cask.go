package bench

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// caskSystem is Cask: one QUIC connection per peer, node names as PID
// addresses, static discovery from the peers given to Start. With metrics
// set it is the column cask+metrics: each node also has an OpenTelemetry
// MeterProvider (the SDK's, with a manual reader), so the message path
// counts, and protoactor's actor metrics are on unless noActorMetrics.
type caskSystem struct{ metrics, noActorMetrics bool }

func init() { Register(caskSystem{}) }

// CaskWithMetrics is the system of the column cask+metrics: Cask with a
// MeterProvider on every node (caskbench -metrics); with actorMetrics
// false, Config.DisableActorMetrics keeps protoactor's actor metrics off
// and only Cask's instruments count (caskbench -metrics
// -actor-metrics=false). It is not registered, so a default run leaves
// it out.
func CaskWithMetrics(actorMetrics bool) System {
	return caskSystem{metrics: true, noActorMetrics: !actorMetrics}
}

func (s caskSystem) Name() string {
	if s.metrics {
		return ColCaskMetrics
	}
	return ColCask
}

func (s caskSystem) Start(ctx context.Context, id string, peers ...Node) (Node, error) {
	cfg := actors.Config{
		Name: "bench-" + id + "@localhost",
		// Silenced like protoactor's logger (see quietLogger); everything
		// else is Cask's default configuration.
		Logger: quietLogger(nil),
		Transport: transport.Config{
			ListenAddr: "127.0.0.1:0",
		},
		Dist: dist.Config{
			Peers: map[string]string{},
			// Every peer is in the static map; never fall through to DNS.
			DisableDNS: true,
		},
	}
	for _, p := range peers {
		cn, ok := p.(*caskNode)
		if !ok {
			return nil, fmt.Errorf("cask: peer %T is not a cask node", p)
		}
		cfg.Dist.Peers[cn.n.Name()] = cn.n.Addr().String()
	}
	var provider *sdkmetric.MeterProvider
	if s.metrics {
		// A manual reader is never collected here: what is measured is
		// the cost on the message path, not an exporter's.
		provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		cfg.MeterProvider = provider
		cfg.DisableActorMetrics = s.noActorMetrics
	}
	n, err := actors.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &caskNode{n: n, provider: provider}, nil
}

// Connect opens the connection explicitly. Sending would open it on demand
// too; connecting first keeps the timed path the documented one.
func (caskSystem) Connect(ctx context.Context, from, to Node) error {
	f, ok1 := from.(*caskNode)
	t, ok2 := to.(*caskNode)
	if !ok1 || !ok2 {
		return fmt.Errorf("cask: connect %T -> %T", from, to)
	}
	return f.n.Connect(ctx, t.n.Name())
}

type caskNode struct {
	n        *actors.Node
	provider *sdkmetric.MeterProvider // nil without metrics
}

func (c *caskNode) Root() *actor.RootContext { return c.n.Root() }

func (c *caskNode) PID(name string) *actor.PID { return actor.NewPID(c.n.Name(), name) }

func (c *caskNode) Stop() error {
	err := c.n.Stop()
	if c.provider != nil {
		_ = c.provider.Shutdown(context.Background())
	}
	return err
}
