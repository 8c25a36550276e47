package testkit_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
)

func TestProbeRequestGetsResponseAndSender(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	probe.Request(target, &ping{n: 7})

	got := testkit.ExpectMsgType[*pong](probe, waitTimeout)
	if got.n != 7 {
		t.Fatalf("got pong %d, want 7", got.n)
	}
}

func TestProbeSendHasNoSenderRequestHasProbe(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	reporter := system.Root.Spawn(actor.PropsFromFunc(reportTo(probe.PID())))

	probe.Send(reporter, "sent")
	probe.Request(reporter, "requested")

	first := testkit.ExpectMsgType[seen](probe, waitTimeout)
	if first.message != "sent" || first.sender != nil {
		t.Fatalf("after Send, reporter saw %+v, want message \"sent\" with no sender", first)
	}
	if probe.Sender() == nil || !probe.Sender().Equal(reporter) {
		t.Fatalf("Sender() = %v, want reporter %v", probe.Sender(), reporter)
	}
	second := testkit.ExpectMsgType[seen](probe, waitTimeout)
	if second.message != "requested" || !second.sender.Equal(probe.PID()) {
		t.Fatalf("after Request, reporter saw %+v, want message \"requested\" from %v", second, probe.PID())
	}
}

func TestProbeSenderIsNilForMessageWithoutSender(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	reporter := system.Root.Spawn(actor.PropsFromFunc(reportTo(probe.PID())))

	probe.Send(reporter, "hello")
	testkit.ExpectMsgType[seen](probe, waitTimeout)
	if !probe.Sender().Equal(reporter) {
		t.Fatalf("Sender() = %v, want reporter %v", probe.Sender(), reporter)
	}
	system.Root.Send(probe.PID(), "anonymous")
	probe.ExpectMsg(waitTimeout)

	if s := probe.Sender(); s != nil {
		t.Fatalf("Sender() = %v after a message without sender, want nil", s)
	}
}

func TestProbeRespondAnswersRequester(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)

	future := system.Root.RequestFuture(probe.PID(), "question", waitTimeout)
	if got := probe.ExpectMsg(waitTimeout); got != "question" {
		t.Fatalf("ExpectMsg = %v, want \"question\"", got)
	}
	probe.Respond("answer")

	res, err := future.Result()
	if err != nil {
		t.Fatalf("future: %v", err)
	}
	if res != "answer" {
		t.Fatalf("future result = %v, want \"answer\"", res)
	}
}

func TestProbeRespondWithoutSenderFails(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	system.Root.Send(probe.PID(), "no reply address")
	probe.ExpectMsg(waitTimeout)
	probe.Respond("answer")

	rec.requireOneFailure(t, "no sender")
}

func TestProbeExpectMsgTimesOut(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	if got := probe.ExpectMsg(quietPeriod); got != nil {
		t.Fatalf("ExpectMsg returned %v on timeout, want nil", got)
	}

	rec.requireOneFailure(t, "timed out")
}

func TestProbeGetNextMessage(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	system.Root.Send(probe.PID(), "first")
	system.Root.Send(probe.PID(), "second")

	for _, want := range []string{"first", "second"} {
		got, err := probe.GetNextMessage(waitTimeout)
		if err != nil || got != want {
			t.Fatalf("GetNextMessage = %v, %v; want %q, nil", got, err, want)
		}
	}
	got, err := probe.GetNextMessage(quietPeriod)
	if !errors.Is(err, testkit.ErrTimeout) || got != nil {
		t.Fatalf("GetNextMessage on empty queue = %v, %v; want nil, ErrTimeout", got, err)
	}
	rec.requireNoFailures(t) // a timeout is an error value, not a test failure
}

func TestExpectMsgTypeWrongTypeFails(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	system.Root.Send(probe.PID(), "not a pong")
	if got := testkit.ExpectMsgType[*pong](probe, waitTimeout); got != nil {
		t.Fatalf("ExpectMsgType returned %v for a wrong type, want nil", got)
	}

	rec.requireOneFailure(t, "got string")
}

func TestExpectMsgTypeTimesOut(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	if got := testkit.ExpectMsgType[pong](probe, quietPeriod); got != (pong{}) {
		t.Fatalf("ExpectMsgType returned %v on timeout, want zero", got)
	}

	rec.requireOneFailure(t, "timed out")
}

func TestExpectNoMessagePassesWhenQuiet(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	probe.ExpectNoMessage(quietPeriod)

	rec.requireNoFailures(t)
}

func TestExpectNoMessageFailsOnMessage(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	system.Root.Send(probe.PID(), "surprise")
	probe.ExpectNoMessage(waitTimeout)

	rec.requireOneFailure(t, "surprise")
}

func TestFishForMessageSkipsUntilMatch(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)

	for n := 1; n <= 5; n++ {
		system.Root.Send(probe.PID(), &ping{n: n})
	}

	got := probe.FishForMessage(waitTimeout, func(msg any) bool {
		p, ok := msg.(*ping)
		return ok && p.n == 3
	})
	if p, ok := got.(*ping); !ok || p.n != 3 {
		t.Fatalf("FishForMessage = %v, want ping 3", got)
	}
	// Messages before the match are gone; those after it remain.
	if next := testkit.ExpectMsgType[*ping](probe, waitTimeout); next.n != 4 {
		t.Fatalf("message after the match = ping %d, want ping 4", next.n)
	}
}

func TestFishForMessageTimesOut(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	system.Root.Send(probe.PID(), &ping{n: 1})
	system.Root.Send(probe.PID(), &ping{n: 2})
	got := probe.FishForMessage(quietPeriod, func(msg any) bool { return false })
	if got != nil {
		t.Fatalf("FishForMessage returned %v without a match, want nil", got)
	}

	rec.requireOneFailure(t, "skipping 2 messages")
}

func TestProbeWatchDeliversTerminated(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	probe.Watch(target)
	system.Root.Stop(target)

	got := probe.ExpectTerminated(target, waitTimeout)
	if got == nil || got.Why != actor.TerminatedReason_Stopped {
		t.Fatalf("ExpectTerminated = %v, want reason Stopped", got)
	}
}

func TestProbeWatchUnknownPIDDeliversNotFound(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	ghost := system.NewLocalPID("never-spawned")

	probe.Watch(ghost)

	got := probe.ExpectTerminated(ghost, waitTimeout)
	if got == nil || got.Why != actor.TerminatedReason_NotFound {
		t.Fatalf("ExpectTerminated = %v, want reason NotFound", got)
	}
}

func TestProbeUnwatchStopsTerminated(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	probe.Watch(target)
	probe.Unwatch(target)
	if err := system.Root.StopFuture(target).Wait(); err != nil {
		t.Fatalf("stopping target: %v", err)
	}

	probe.ExpectNoMessage(quietPeriod)
	rec.requireNoFailures(t)
}

func TestExpectTerminatedForOtherPIDFails(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)
	stopped := system.Root.Spawn(actor.PropsFromFunc(echo))
	alive := system.Root.Spawn(actor.PropsFromFunc(echo))

	probe.Watch(stopped)
	system.Root.Stop(stopped)
	if got := probe.ExpectTerminated(alive, waitTimeout); got != nil {
		t.Fatalf("ExpectTerminated returned %v for the wrong PID, want nil", got)
	}

	rec.requireOneFailure(t, "got Terminated for")
}

func TestExpectTerminatedOtherMessageFails(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	system.Root.Send(probe.PID(), "not terminated")
	if got := probe.ExpectTerminated(target, waitTimeout); got != nil {
		t.Fatalf("ExpectTerminated returned %v for another message, want nil", got)
	}

	rec.requireOneFailure(t, "got string")
}

func TestExpectTerminatedTimesOut(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)
	target := system.Root.Spawn(actor.PropsFromFunc(echo))

	probe.Watch(target)
	if got := probe.ExpectTerminated(target, quietPeriod); got != nil {
		t.Fatalf("ExpectTerminated returned %v for a live actor, want nil", got)
	}

	rec.requireOneFailure(t, "timed out")
}

func TestProbeDropsOwnLifecycleMessages(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)

	// *actor.Started is handled before any user message, so if the probe
	// queued it, it would come before the marker.
	system.Root.Send(probe.PID(), "marker")
	if got := probe.ExpectMsg(waitTimeout); got != "marker" {
		t.Fatalf("first message = %T %v, want \"marker\"", got, got)
	}

	// Stop returns once the probe has stopped, so Stopping and Stopped
	// would already be queued.
	probe.Stop()
	probe.ExpectNoMessage(quietPeriod)
	rec.requireNoFailures(t)
}

func TestProbeCleanupStopsProbe(t *testing.T) {
	system := newSystem(t)
	watcher := testkit.NewProbe(t, system)

	var inner *actor.PID
	t.Run("inner", func(t *testing.T) {
		inner = testkit.NewProbe(t, system).PID()
		watcher.Watch(inner)
	})

	got := watcher.ExpectTerminated(inner, waitTimeout)
	if got == nil || got.Why != actor.TerminatedReason_Stopped {
		t.Fatalf("ExpectTerminated = %v, want reason Stopped", got)
	}
}

func TestProbeStopTwice(t *testing.T) {
	system := newSystem(t)
	rec := newRecordingTB(t)
	probe := testkit.NewProbe(rec, system)
	watcher := testkit.NewProbe(t, system)
	watcher.Watch(probe.PID())

	probe.Stop()
	probe.Stop()

	watcher.ExpectTerminated(probe.PID(), waitTimeout)
	rec.requireNoFailures(t)
}

func TestProbeZeroTimeoutWaitsOneSecond(t *testing.T) {
	system := newSystem(t)
	tests := []struct {
		name     string
		wait     func(t *testing.T, p *testkit.Probe)
		failures int // recorded by the probe
	}{
		{"GetNextMessage", func(t *testing.T, p *testkit.Probe) {
			if _, err := p.GetNextMessage(0); !errors.Is(err, testkit.ErrTimeout) {
				t.Errorf("GetNextMessage(0): %v, want ErrTimeout", err)
			}
		}, 0},
		{"ExpectNoMessage", func(t *testing.T, p *testkit.Probe) { p.ExpectNoMessage(0) }, 0},
		{"FishForMessage", func(t *testing.T, p *testkit.Probe) {
			p.FishForMessage(0, func(any) bool { return true })
		}, 1},
	}
	// The waits run side by side, a second each. (t.Run may be called
	// from several goroutines at once.)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tt := range tests {
		wg.Go(func() {
			t.Run(tt.name, func(t *testing.T) {
				rec := newRecordingTB(t)
				probe := testkit.NewProbe(rec, system)
				start := time.Now()
				tt.wait(t, probe)
				if elapsed := time.Since(start); elapsed < testkit.DefaultTimeout || elapsed > 3*testkit.DefaultTimeout {
					t.Errorf("gave up after %v, want about DefaultTimeout (%v)", elapsed, testkit.DefaultTimeout)
				}
				if tt.failures == 0 {
					rec.requireNoFailures(t)
				} else {
					rec.requireOneFailure(t, "no match within 1s")
				}
			})
		})
	}
}

func TestProbeNegativeTimeoutDoesNotWait(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)

	start := time.Now()
	probe.ExpectNoMessage(-1)
	if _, err := probe.GetNextMessage(-1); !errors.Is(err, testkit.ErrTimeout) {
		t.Fatalf("GetNextMessage(-1) on a quiet probe: %v, want ErrTimeout", err)
	}
	if elapsed := time.Since(start); elapsed > quietPeriod {
		t.Fatalf("negative timeouts waited %v", elapsed)
	}
}
