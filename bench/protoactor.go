package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
)

// protoactorSystem is protoactor-go's own gRPC remote, default
// configuration, one actor system per node.
type protoactorSystem struct{}

func init() { Register(protoactorSystem{}) }

func (protoactorSystem) Name() string { return ColProtoactor }

func (protoactorSystem) Start(_ context.Context, _ string, _ ...Node) (Node, error) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	r := remote.NewRemote(sys, remote.Configure("127.0.0.1", 0))
	r.Start() // panics if it cannot listen; the runner recovers it
	return &protoactorNode{sys: sys, remote: r}, nil
}

// Connect is a no-op: protoactor dials lazily on the first send.
func (protoactorSystem) Connect(context.Context, Node, Node) error { return nil }

type protoactorNode struct {
	sys    *actor.ActorSystem
	remote *remote.Remote
}

func (n *protoactorNode) Root() *actor.RootContext { return n.sys.Root }

func (n *protoactorNode) PID(name string) *actor.PID {
	return actor.NewPID(n.sys.Address(), name)
}

// Stop shuts the remote and the actor system down. protoactor-go's
// endpoint manager can panic with "send on closed channel" while
// shutting down (remote/endpoint_manager.go, seen here once in three full
// runs); the panic is turned into an error so one flaky shutdown outside
// the timed sections does not end the whole benchmark run.
func (n *protoactorNode) Stop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("protoactor remote shutdown panicked: %v", r)
		}
		n.sys.Shutdown()
	}()
	n.remote.Shutdown(true)
	return nil
}

// quietLogger silences protoactor's per-connection Info logging, which
// would otherwise flood stdout and cost time inside the measurements.
func quietLogger(*actor.ActorSystem) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
}
