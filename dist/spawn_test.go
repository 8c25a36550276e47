package dist_test

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// spawnPair starts b with the kind "echo" registered and a, which knows b.
func spawnPair(t *testing.T) (a, b *actors.Node) {
	t.Helper()
	b = startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	if err := b.RegisterKind("echo", echoProps()); err != nil {
		t.Fatal(err)
	}
	a = startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	return a, b
}

func TestSpawnRemote(t *testing.T) {
	a, b := spawnPair(t)

	// No session yet: SpawnRemote opens one.
	pid, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "")
	if err != nil {
		t.Fatalf("SpawnRemote: %v", err)
	}
	if pid.Address != b.Name() || pid.Id == "" {
		t.Fatalf("SpawnRemote returned %v, want a PID on %s", pid, b.Name())
	}
	if _, ok := b.System().ProcessRegistry.GetLocal(pid.Id); !ok {
		t.Errorf("%v is not registered on b", pid)
	}
	mustEcho(t, a, pid, "anon")

	pid2, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "")
	if err != nil {
		t.Fatalf("second SpawnRemote: %v", err)
	}
	if pid2.Id == pid.Id {
		t.Errorf("two anonymous remote spawns share the id %q", pid.Id)
	}
	mustEcho(t, a, pid2, "anon2")
}

func TestSpawnRemoteNamed(t *testing.T) {
	a, b := spawnPair(t)
	pid, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "named")
	if err != nil {
		t.Fatalf("SpawnRemote named: %v", err)
	}
	if want := actor.NewPID(b.Name(), "named"); pid.Address != want.Address || pid.Id != want.Id {
		t.Fatalf("SpawnRemote named returned %v, want %v", pid, want)
	}
	mustEcho(t, a, actor.NewPID(b.Name(), "named"), "by name")

	_, err = a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "named")
	if !errors.Is(err, dist.ErrNameTaken) {
		t.Errorf("SpawnRemote with a taken name = %v, want %v", err, dist.ErrNameTaken)
	}
	// The first actor is untouched.
	mustEcho(t, a, pid, "still there")
}

func TestSpawnRemoteUnknownKind(t *testing.T) {
	a, b := spawnPair(t)
	_, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "nope", "")
	if !errors.Is(err, dist.ErrUnknownKind) {
		t.Errorf("SpawnRemote of an unregistered kind = %v, want %v", err, dist.ErrUnknownKind)
	}
	_, err = a.SpawnRemote(ctxTimeout(t), b.Name(), "nope", "with-name")
	if !errors.Is(err, dist.ErrUnknownKind) {
		t.Errorf("SpawnRemote of an unregistered kind with a name = %v, want %v", err, dist.ErrUnknownKind)
	}
	if _, ok := b.System().ProcessRegistry.GetLocal("with-name"); ok {
		t.Errorf("a refused spawn registered a process on b")
	}
	// The session is fine.
	pid, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "")
	if err != nil {
		t.Fatal(err)
	}
	mustEcho(t, a, pid, "ok")
}

func TestSpawnRemoteUnknownNode(t *testing.T) {
	a, _ := spawnPair(t)
	_, err := a.SpawnRemote(ctxTimeout(t), "ghost@localhost", "echo", "")
	if !errors.Is(err, dist.ErrUnknownNode) {
		t.Errorf("SpawnRemote on an unknown node = %v, want %v", err, dist.ErrUnknownNode)
	}
}

func TestRegisterKindTwice(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	if err := b.RegisterKind("echo", echoProps()); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterKind("echo", echoProps()); err == nil {
		t.Errorf("registering a kind twice succeeded")
	}
	if err := b.RegisterKind("", echoProps()); err == nil {
		t.Errorf("registering an empty kind succeeded")
	}
}

// TestStopAcrossNodes: Stop and Poison sent from a stop b's actor; a local
// watcher on b and a remote watcher on a both see it terminate.
func TestStopAcrossNodes(t *testing.T) {
	for _, how := range []string{"Stop", "Poison", "StopFuture", "PoisonFuture"} {
		t.Run(how, func(t *testing.T) {
			a, b := spawnPair(t)
			pid, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "victim")
			if err != nil {
				t.Fatal(err)
			}
			mustEcho(t, a, pid, "alive")
			local := watcher(t, b, actor.NewPID(b.Name(), "victim"))
			remote := watcher(t, a, pid)
			switch how {
			case "Stop":
				a.Root().Stop(pid)
			case "Poison":
				a.Root().Poison(pid)
			case "StopFuture":
				if err := a.Root().StopFuture(pid).Wait(); err != nil {
					t.Errorf("StopFuture: %v", err)
				}
			case "PoisonFuture":
				if err := a.Root().PoisonFuture(pid).Wait(); err != nil {
					t.Errorf("PoisonFuture: %v", err)
				}
			}
			tm := local.terminated(t, actor.NewPID(b.Name(), "victim"))
			if tm.Why != actor.TerminatedReason_Stopped {
				t.Errorf("local watcher: Why = %v, want Stopped", tm.Why)
			}
			rtm := remote.terminated(t, pid)
			if rtm.Why != actor.TerminatedReason_Stopped {
				t.Errorf("remote watcher: Why = %v, want Stopped", rtm.Why)
			}
			eventually(t, waitTimeout, func() bool {
				_, ok := b.System().ProcessRegistry.GetLocal("victim")
				return !ok
			}, "victim unregistered on b")
			// The name is free again.
			if _, err := a.SpawnRemote(ctxTimeout(t), b.Name(), "echo", "victim"); err != nil {
				t.Errorf("respawn under the freed name: %v", err)
			}
		})
	}
}

// TestWatchRemoteNotFound: watching a remote PID that never existed ends
// with Terminated at once.
func TestWatchRemoteNotFound(t *testing.T) {
	a, b := spawnPair(t)
	ghost := actor.NewPID(b.Name(), "never-was")
	w := watcher(t, a, ghost)
	start := time.Now()
	tm := w.terminated(t, ghost)
	if tm.Why != actor.TerminatedReason_NotFound {
		t.Errorf("Why = %v, want NotFound", tm.Why)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("Terminated for a missing remote actor took %v", d)
	}
}
