package testkit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
)

// These tests cover what the upstream suite (upstream_suite_test.go) cannot
// say with upstream's names alone: the sentinels, the probe's lifecycle and
// the corners of its timeouts.

func newTestProbe(t *testing.T, system *actor.ActorSystem) *testkit.TestProbe {
	t.Helper()
	probe := testkit.NewTestProbe()
	system.Root.Spawn(actor.PropsFromFunc(probe.Receive))
	return probe
}

func TestTestProbeErrorsWrapSentinels(t *testing.T) {
	system := newSystem(t)
	probe := newTestProbe(t, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	if _, err := probe.GetNextMessage(quietPeriod); !errors.Is(err, testkit.ErrTimeout) {
		t.Errorf("GetNextMessage on a quiet probe: %v, want ErrTimeout", err)
	}
	probe.Send(probe.PID(), "a string")
	if _, err := testkit.GetNextMessageOf[*pong](probe, waitTimeout); !errors.Is(err, testkit.ErrUnexpectedMessage) {
		t.Errorf("GetNextMessageOf of another type: %v, want ErrUnexpectedMessage", err)
	}
	probe.Send(probe.PID(), "a string")
	if _, err := testkit.GetNextMessageWhere(probe, func(string) bool { return false }, waitTimeout); !errors.Is(err, testkit.ErrUnexpectedMessage) {
		t.Errorf("GetNextMessageWhere failing its condition: %v, want ErrUnexpectedMessage", err)
	}
	probe.Send(probe.PID(), "a string")
	if err := probe.ExpectNoMessage(waitTimeout); !errors.Is(err, testkit.ErrUnexpectedMessage) {
		t.Errorf("ExpectNoMessage with a message: %v, want ErrUnexpectedMessage", err)
	}
	probe.Send(probe.PID(), "a string")
	if _, err := testkit.FishForMessageOf[*pong](probe, quietPeriod); !errors.Is(err, testkit.ErrTimeout) {
		t.Errorf("FishForMessageOf with no match: %v, want ErrTimeout", err)
	}
	if _, err := testkit.RequestFuture[string](probe, target, &ping{n: 1}, waitTimeout); !errors.Is(err, testkit.ErrUnexpectedMessage) {
		t.Errorf("RequestFuture with a reply of another type: %v, want ErrUnexpectedMessage", err)
	}
	if _, err := testkit.RequestFuture[*pong](probe, target, "no answer to this", quietPeriod); !errors.Is(err, actor.ErrTimeout) {
		t.Errorf("RequestFuture with no reply: %v, want actor.ErrTimeout", err)
	}
	if got, err := testkit.RequestFuture[*pong](probe, target, &ping{n: 3}, waitTimeout); err != nil || got.n != 3 {
		t.Errorf("RequestFuture = %v, %v; want pong 3", got, err)
	}
}

func TestTestProbeNegativeTimeoutDoesNotWait(t *testing.T) {
	system := newSystem(t)
	probe := newTestProbe(t, system)

	start := time.Now()
	if _, err := probe.GetNextMessage(-1); !errors.Is(err, testkit.ErrTimeout) {
		t.Fatalf("GetNextMessage(-1) on a quiet probe: %v, want ErrTimeout", err)
	}
	if err := probe.ExpectNoMessage(-1); err != nil {
		t.Fatalf("ExpectNoMessage(-1) on a quiet probe: %v", err)
	}
	if elapsed := time.Since(start); elapsed > quietPeriod {
		t.Fatalf("negative timeouts waited %v", elapsed)
	}

	// A poison pill is a user message: once the probe has stopped, the
	// message sent before it is queued.
	system.Root.Send(probe.PID(), "queued")
	if err := system.Root.PoisonFuture(probe.PID()).Wait(); err != nil {
		t.Fatal(err)
	}
	if got, err := probe.GetNextMessage(-1); err != nil || got != "queued" {
		t.Fatalf("GetNextMessage(-1) with a message queued = %v, %v; want \"queued\"", got, err)
	}
}

func TestTestProbeContextAndPID(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewTestProbe()
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return probe }))

	// Right after Spawn the probe may not have started; Context waits.
	if got := probe.Context().Self(); !got.Equal(pid) {
		t.Fatalf("Context().Self() = %v, want %v", got, pid)
	}
	if got := probe.PID(); !got.Equal(pid) {
		t.Fatalf("PID() = %v, want %v", got, pid)
	}
}

func TestTestProbeContextPanicsWhenNeverSpawned(t *testing.T) {
	t.Parallel() // it waits the default second first
	probe := testkit.NewTestProbe()

	defer func() {
		if recover() == nil {
			t.Fatal("Context() on a probe never spawned did not panic")
		}
	}()
	probe.Context()
}

func TestTestProbeQueuesEverythingButStarted(t *testing.T) {
	system := newSystem(t)
	probe := newTestProbe(t, system)

	if err := system.Root.StopFuture(probe.PID()).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.GetNextMessageOf[*actor.Stopping](probe, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := testkit.GetNextMessageOf[*actor.Stopped](probe, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if err := probe.ExpectNoMessage(quietPeriod); err != nil {
		t.Fatal(err)
	}
}

func TestTestProbeQueueHasNoBound(t *testing.T) {
	system := newSystem(t)
	probe := newTestProbe(t, system)

	const n = 1000 // upstream's probe would block its actor after 100
	for i := range n {
		system.Root.Send(probe.PID(), &ping{n: i})
	}
	for i := range n {
		got, err := testkit.GetNextMessageOf[*ping](probe, waitTimeout)
		if err != nil || got.n != i {
			t.Fatalf("message %d: %v, %v", i, got, err)
		}
	}
}
