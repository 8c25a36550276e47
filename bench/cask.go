package bench

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// caskSystem is Cask: one QUIC connection per peer, node names as PID
// addresses, static discovery from the peers given to Start.
type caskSystem struct{}

func init() { Register(caskSystem{}) }

func (caskSystem) Name() string { return ColCask }

func (caskSystem) Start(ctx context.Context, id string, peers ...Node) (Node, error) {
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
	n, err := actors.Start(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &caskNode{n: n}, nil
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

type caskNode struct{ n *actors.Node }

func (c *caskNode) Root() *actor.RootContext { return c.n.Root() }

func (c *caskNode) PID(name string) *actor.PID { return actor.NewPID(c.n.Name(), name) }

func (c *caskNode) Stop() error { return c.n.Stop() }
