package actors_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
)

// TestNodeGroupsAndNames: the Node wrappers over two nodes: a member
// joined on b is found on a and reached through the group, a name
// registered on a resolves on b, and both go when their actor stops.
func TestNodeGroupsAndNames(t *testing.T) {
	secret := []byte("groups-test")
	a := startQuiet(t, "a@localhost", actors.Config{ClusterSecret: secret,
		Membership: membership.Config{AntiEntropyPeriod: 200 * time.Millisecond}})
	b := startQuiet(t, "b@localhost", actors.Config{ClusterSecret: secret,
		Dist:       dist.Config{DisableDNS: true, Peers: map[string]string{a.Name(): a.Addr().String()}},
		Membership: membership.Config{ContactNodes: []string{a.Name()}, AntiEntropyPeriod: 200 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var got atomic.Int64
	worker := sink(t, b, &got)
	if err := b.JoinGroup(ctx, "workers", worker); err != nil {
		t.Fatal(err)
	}
	if err := a.JoinGroup(ctx, "workers", actor.NewPID(b.Name(), worker.Id)); !errors.Is(err, membership.ErrNotLocal) {
		t.Fatalf("a joins b's actor: %v, want ErrNotLocal", err)
	}
	eventually(t, "a sees b's worker", func() (bool, string) {
		m := a.GroupMembers("workers")
		return len(m) == 1 && m[0].Address == b.Name() && m[0].Id == worker.Id, pidsString(m)
	})
	if g := a.Groups(); !slices.Equal(g, []string{"workers"}) {
		t.Fatalf("a.Groups() = %v", g)
	}
	a.Root().Send(a.GroupMembers("workers")[0], wrapperspb.String("job"))
	eventually(t, "the job reaches the worker", func() (bool, string) { return got.Load() == 1, "" })

	leader := a.Root().Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := a.RegisterName(ctx, "leader", leader); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b resolves the leader", func() (bool, string) {
		p, ok := b.Whereis("leader")
		return ok && p.Equal(leader), ""
	})
	if n := b.RegisteredNames(); !slices.Equal(n, []string{"leader"}) {
		t.Fatalf("b.RegisteredNames() = %v", n)
	}
	if err := b.RegisterName(ctx, "leader", worker); !errors.Is(err, membership.ErrNameTaken) {
		t.Fatalf("b registers a taken name: %v, want ErrNameTaken", err)
	}
	a.Root().Stop(leader)
	b.Root().Stop(worker)
	eventually(t, "both released everywhere", func() (bool, string) {
		_, okA := a.Whereis("leader")
		_, okB := b.Whereis("leader")
		return !okA && !okB && len(a.GroupMembers("workers")) == 0 && len(b.GroupMembers("workers")) == 0, ""
	})
}

func pidsString(pids []*actor.PID) string {
	s := ""
	for _, p := range pids {
		s += p.String() + " "
	}
	return s
}
