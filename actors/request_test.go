package actors_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport/identity"
)

func startQuiet(t *testing.T, name string, cfg actors.Config) *actors.Node {
	t.Helper()
	cfg.Name = name
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	return n
}

func echo(t *testing.T, n *actors.Node) *actor.PID {
	t.Helper()
	pid, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok && m.Value != "ignore" {
			c.Respond(wrapperspb.String("echo:" + m.Value))
		}
	}), "echo")
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestRequestCauses: actors.Request gives the reply, or an error that
// errors.Is the reason there is none.
func TestRequestCauses(t *testing.T) {
	secret := []byte("request-test")
	b := startQuiet(t, "b@localhost", actors.Config{ClusterSecret: secret})
	echo(t, b)
	stranger := startQuiet(t, "s@localhost", actors.Config{ClusterSecret: []byte("another")})
	echo(t, stranger)
	gone := startQuiet(t, "gone@localhost", actors.Config{ClusterSecret: secret})
	deadAddr := gone.Addr().String()
	_ = gone.Stop()
	a := startQuiet(t, "a@localhost", actors.Config{ClusterSecret: secret, Dist: dist.Config{
		DisableDNS: true, ConnectTimeout: time.Second,
		// the down peer stays unreachable for the whole test
		ReconnectBackoffMin: 10 * time.Second, ReconnectBackoffMax: 10 * time.Second,
		Peers: map[string]string{b.Name(): b.Addr().String(), stranger.Name(): stranger.Addr().String(), "down@localhost": deadAddr},
	}})
	local := echo(t, a)
	ctx := func(d time.Duration) context.Context {
		c, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return c
	}

	got, err := actors.Request[*wrapperspb.StringValue](ctx(5*time.Second), a, actor.NewPID(b.Name(), "echo"), wrapperspb.String("hi"))
	if err != nil || got.GetValue() != "echo:hi" {
		t.Fatalf("remote request: %v, %v", got, err)
	}
	if got, err := actors.Request[*wrapperspb.StringValue](ctx(5*time.Second), a, local, wrapperspb.String("me")); err != nil || got.GetValue() != "echo:me" {
		t.Fatalf("local request: %v, %v", got, err)
	}

	// The first request to the down peer waits for the connect attempt
	// and carries its error; the next fails at once as unreachable.
	down := actor.NewPID("down@localhost", "echo")
	if _, err := actors.Request[*wrapperspb.StringValue](ctx(5*time.Second), a, down, wrapperspb.String("x")); !errors.Is(err, dist.ErrConnectFailed) {
		t.Errorf("down peer: %v, want ErrConnectFailed", err)
	}

	cases := []struct {
		name string
		pid  *actor.PID
		msg  any
		want []error
	}{
		{"unknown node", actor.NewPID("ghost@nowhere.invalid", "echo"), wrapperspb.String("x"), []error{dist.ErrUnknownNode, actor.ErrDeadLetter}},
		{"unreachable", down, wrapperspb.String("x"), []error{dist.ErrUnreachable, dist.ErrConnectFailed, actor.ErrDeadLetter}},
		{"not protobuf", actor.NewPID(b.Name(), "echo"), struct{ S string }{"x"}, []error{dist.ErrNotProtobuf}},
		{"refused identity", actor.NewPID(stranger.Name(), "echo"), wrapperspb.String("x"), []error{identity.ErrClusterSecret}},
		{"no such actor", actor.NewPID(a.Name(), "nobody"), wrapperspb.String("x"), []error{actor.ErrDeadLetter}},
	}
	for _, c := range cases {
		start := time.Now()
		_, err := actors.Request[*wrapperspb.StringValue](ctx(5*time.Second), a, c.pid, c.msg)
		for _, w := range c.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: %v does not match %v", c.name, err, w)
			}
		}
		t.Logf("%s: %v after %v", c.name, err, time.Since(start).Round(time.Millisecond))
	}

	start := time.Now()
	_, err = actors.Request[*wrapperspb.StringValue](ctx(5*time.Second), a, down, wrapperspb.String("x"))
	if d := time.Since(start); !errors.Is(err, dist.ErrUnreachable) || d > time.Second {
		t.Errorf("unreachable again: %v after %v, want ErrUnreachable at once", err, d)
	}

	if _, err := actors.Request[*wrapperspb.StringValue](ctx(200*time.Millisecond), a, local, wrapperspb.String("ignore")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("no reply: %v, want context.DeadlineExceeded", err)
	}
	if _, err := actors.Request[*wrapperspb.Int32Value](ctx(5*time.Second), a, local, wrapperspb.String("x")); !errors.Is(err, actors.ErrUnexpectedReply) {
		t.Errorf("wrong reply type: %v, want ErrUnexpectedReply", err)
	}
}
