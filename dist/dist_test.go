package dist_test

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
)

func TestQuickEcho(t *testing.T) {
	ctx := context.Background()
	b, err := actors.Start(ctx, actors.Config{Name: "b@localhost", DisableDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	a, err := actors.Start(ctx, actors.Config{Name: "a@localhost", DisableDNS: true, Peers: map[string]string{"b@localhost": b.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	_, err = b.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("echo:" + m.Value))
		}
	}), "echo")
	if err != nil {
		t.Fatal(err)
	}
	res, err := a.Root().RequestFuture(actor.NewPID("b@localhost", "echo"), wrapperspb.String("hi"), 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	if res.(*wrapperspb.StringValue).Value != "echo:hi" {
		t.Fatalf("got %v", res)
	}
}
