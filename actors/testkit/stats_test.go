package testkit_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
)

func isPing(n int) func(any) bool {
	return func(msg any) bool {
		p, ok := msg.(*ping)
		return ok && p.n == n
	}
}

func TestMailboxStatsCountsEachPhase(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	stats := testkit.NewMailboxStats()
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), stats))

	if got := stats.MailboxStartCount(); got != 1 {
		t.Fatalf("MailboxStartCount = %d right after Spawn, want 1", got)
	}
	for n := 1; n <= 3; n++ {
		probe.Request(pid, &ping{n: n})
	}
	if !stats.WaitUntil(func() bool { return testkit.Count[*ping](stats).Received == 3 }, waitTimeout) {
		t.Fatalf("pings not all received: %v", stats.CountsByType())
	}

	if got, want := testkit.Count[*ping](stats), (testkit.Counts{Posted: 3, Delivered: 3, Received: 3}); got != want {
		t.Errorf("Count[*ping] = %+v, want %+v", got, want)
	}
	if got, want := testkit.Count[*pong](stats), (testkit.Counts{Sent: 3}); got != want {
		t.Errorf("Count[*pong] = %+v, want %+v", got, want)
	}
	if got, want := testkit.Count[*actor.Started](stats), (testkit.Counts{Posted: 1, Delivered: 1, Received: 1}); got != want {
		t.Errorf("Count[*actor.Started] = %+v, want %+v", got, want)
	}
	// Requests arrive wrapped in envelopes; stats records the payload.
	if got := testkit.Count[*actor.MessageEnvelope](stats); got != (testkit.Counts{}) {
		t.Errorf("Count[*actor.MessageEnvelope] = %+v, want none", got)
	}
	if got := stats.CountsByType()["*testkit_test.ping"]; got.Posted != 3 {
		t.Errorf("CountsByType()[*testkit_test.ping] = %+v, want 3 posted", got)
	}
	for n := 1; n <= 3; n++ {
		if got := testkit.ExpectMsgType[*pong](probe, waitTimeout); got.n != n {
			t.Fatalf("reply %d is pong %d", n, got.n)
		}
	}
}

func TestMailboxStatsListsKeepOrder(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), stats))

	for n := 1; n <= 5; n++ {
		system.Root.Send(pid, &ping{n: n})
	}
	if !stats.WaitForReceived(isPing(5), waitTimeout) {
		t.Fatal("ping 5 not received")
	}

	lists := map[string][]any{
		"Posted":    stats.Posted(),
		"Delivered": stats.Delivered(),
		"Received":  stats.Received(),
	}
	for name, msgs := range lists {
		var got []int
		for _, msg := range msgs {
			if p, ok := msg.(*ping); ok {
				got = append(got, p.n)
			}
		}
		if len(got) != 5 {
			t.Fatalf("%s holds pings %v, want 1..5", name, got)
		}
		for i, n := range got {
			if n != i+1 {
				t.Fatalf("%s holds pings %v, want 1..5 in order", name, got)
			}
		}
	}
	// Without a sender, echo's Respond goes straight to dead letters,
	// bypassing the sender middleware: nothing counts as Sent.
	if got := stats.Sent(); len(got) != 0 {
		t.Fatalf("Sent holds %v, want nothing", got)
	}
}

func TestMailboxStatsReceivedMeansHandled(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	release := make(chan struct{})
	blocker := func(ctx actor.Context) {
		if _, ok := ctx.Message().(*ping); ok {
			<-release
		}
	}
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(blocker), stats))

	system.Root.Send(pid, &ping{n: 1})
	if !stats.WaitForPosted(isPing(1), waitTimeout) {
		t.Fatal("ping not posted")
	}
	if !stats.WaitForDelivered(isPing(1), waitTimeout) {
		t.Fatal("ping not delivered")
	}
	if stats.WaitForReceived(isPing(1), quietPeriod) {
		t.Fatal("ping counted as received while Receive is still blocked")
	}

	close(release)
	if !stats.WaitForReceived(isPing(1), waitTimeout) {
		t.Fatal("ping not received after Receive returned")
	}
	if !stats.WaitUntil(func() bool { return stats.MailboxEmptyCount() > 0 }, waitTimeout) {
		t.Fatal("mailbox never reported empty")
	}
}

func TestMailboxStatsPanicIsDeliveredNotReceived(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	crasher := func(ctx actor.Context) {
		if p, ok := ctx.Message().(*ping); ok && p.n == 1 {
			panic("boom")
		}
	}
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(crasher), stats))

	system.Root.Send(pid, &ping{n: 1})
	system.Root.Send(pid, &ping{n: 2})
	// The supervisor restarts the actor, which then handles ping 2.
	if !stats.WaitForReceived(isPing(2), waitTimeout) {
		t.Fatalf("ping 2 not received: %v", stats.CountsByType())
	}
	if !stats.WaitForDelivered(isPing(1), 0) {
		t.Error("ping 1 not recorded as delivered")
	}
	if stats.WaitForReceived(isPing(1), 0) {
		t.Error("ping 1 recorded as received although Receive panicked")
	}
}

func TestMailboxStatsWaitSeesHistoryAndTimesOut(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), stats))

	system.Root.Send(pid, &ping{n: 1})
	if !stats.WaitForReceived(isPing(1), waitTimeout) {
		t.Fatal("ping 1 not received")
	}

	// Already recorded: found without waiting.
	if !stats.WaitForPosted(isPing(1), 0) {
		t.Error("WaitForPosted missed a message posted before the call")
	}
	// Never sent: each wait gives up.
	waits := map[string]func(func(any) bool, time.Duration) bool{
		"WaitForPosted":    stats.WaitForPosted,
		"WaitForDelivered": stats.WaitForDelivered,
		"WaitForReceived":  stats.WaitForReceived,
		"WaitForSent":      stats.WaitForSent,
	}
	for name, wait := range waits {
		if wait(isPing(99), quietPeriod) {
			t.Errorf("%s reported a message that was never sent", name)
		}
	}
	if stats.WaitUntil(func() bool { return false }, quietPeriod) {
		t.Error("WaitUntil reported a condition that never holds")
	}
}

func TestMailboxStatsWaitForSent(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	stats := testkit.NewMailboxStats()
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), stats))

	probe.Request(pid, &ping{n: 4})

	if !stats.WaitForSent(func(msg any) bool { p, ok := msg.(*pong); return ok && p.n == 4 }, waitTimeout) {
		t.Fatalf("pong 4 not sent: %v", stats.CountsByType())
	}
	testkit.ExpectMsgType[*pong](probe, waitTimeout)
}

func TestMailboxStatsCountMatchesInterfaces(t *testing.T) {
	system := newSystem(t)
	var stats testkit.MailboxStats // the zero value is ready to use
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), &stats))

	system.Root.Send(pid, errors.New("first"))
	system.Root.Send(pid, errors.New("second"))
	system.Root.Send(pid, &ping{n: 1})
	if !stats.WaitForReceived(isPing(1), waitTimeout) {
		t.Fatal("ping not received")
	}

	if got := testkit.Count[error](&stats).Received; got != 2 {
		t.Errorf("Count[error].Received = %d, want 2", got)
	}
}

func TestWithStatsLeavesPropsUnchanged(t *testing.T) {
	system := newSystem(t)
	probe := testkit.NewProbe(t, system)
	stats := testkit.NewMailboxStats()
	props := actor.PropsFromFunc(echo)
	_ = testkit.WithStats(props, stats)

	plain := system.Root.Spawn(props)
	probe.Request(plain, &ping{n: 1})
	testkit.ExpectMsgType[*pong](probe, waitTimeout)

	if got := stats.CountsByType(); len(got) != 0 || stats.MailboxStartCount() != 0 {
		t.Fatalf("stats saw an actor spawned from the original props: %v", got)
	}
}

func TestWithStatsKeepsExistingMiddleware(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	var mu sync.Mutex
	var own []any
	ownMiddleware := func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			mu.Lock()
			own = append(own, env.Message)
			mu.Unlock()
			next(ctx, env)
		}
	}
	props := actor.PropsFromFunc(echo, actor.WithReceiverMiddleware(ownMiddleware))
	pid := system.Root.Spawn(testkit.WithStats(props, stats))

	system.Root.Send(pid, &ping{n: 1})
	if !stats.WaitForReceived(isPing(1), waitTimeout) {
		t.Fatal("ping not received")
	}

	mu.Lock()
	defer mu.Unlock()
	if len(own) != len(stats.Delivered()) {
		t.Fatalf("props' own middleware saw %v, stats saw %v", own, stats.Delivered())
	}
}

func TestMailboxStatsConcurrentSenders(t *testing.T) {
	const senders, perSender = 8, 100

	system := newSystem(t)
	stats := testkit.NewMailboxStats()
	pid := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(echo), stats))

	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perSender; n++ {
				system.Root.Send(pid, &ping{n: n})
			}
		}()
	}
	wg.Wait()

	want := senders * perSender
	if !stats.WaitUntil(func() bool { return testkit.Count[*ping](stats).Received == want }, waitTimeout) {
		t.Fatalf("received %d pings, want %d", testkit.Count[*ping](stats).Received, want)
	}
	if got := testkit.Count[*ping](stats).Posted; got != want {
		t.Fatalf("posted %d pings, want %d", got, want)
	}
}
