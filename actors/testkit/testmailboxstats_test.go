package testkit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
)

func isPingMsg(m any) bool { _, ok := m.(*ping); return ok }

func countOf(msgs []any, match func(any) bool) int {
	n := 0
	for _, m := range msgs {
		if match(m) {
			n++
		}
	}
	return n
}

func waitReset(t *testing.T, stats *testkit.TestMailboxStats) {
	t.Helper()
	select {
	case <-stats.Reset:
	case <-time.After(waitTimeout):
		t.Fatal("no signal on Reset")
	}
}

func TestTestMailboxStatsRecordsMailboxEvents(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewTestMailboxStats(isPingMsg)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}, testkit.WithMailboxStats(stats)))

	system.Root.Send(pid, &ping{n: 1})
	waitReset(t, stats)
	// "Empty" follows the handled ping on the mailbox's goroutine, after
	// Reset: poll a snapshot for it.
	hasEmpty := func() bool {
		return countOf(stats.Snapshot().Stats, func(m any) bool { return m == "Empty" }) > 0
	}
	if err := testkit.AwaitConditionAsync(hasEmpty, waitTimeout); err != nil {
		t.Fatalf("no \"Empty\" event: %v", err)
	}
	rec := stats.Snapshot()
	if countOf(rec.Stats, func(m any) bool { return m == "Started" }) != 1 {
		t.Errorf("Stats = %v, want one \"Started\"", rec.Stats)
	}
	if countOf(rec.Stats, isPingMsg) != 2 || countOf(rec.Posted, isPingMsg) != 1 || countOf(rec.Received, isPingMsg) != 1 {
		t.Errorf("ping recorded in Stats %v, Posted %v, Received %v; want twice, once, once", rec.Stats, rec.Posted, rec.Received)
	}
	if _, ok := rec.Posted[0].(*actor.Started); !ok {
		t.Errorf("Posted = %v, want *actor.Started (a system message) first", rec.Posted)
	}
}

func TestTestMailboxStatsRecordsRequestsUnwrapped(t *testing.T) {
	system := newSystem(t)
	probe := newTestProbe(t, system)
	stats := testkit.NewTestMailboxStats(isPingMsg)
	pid := system.Root.Spawn(actor.PropsFromFunc(echo, testkit.WithMailboxStats(stats), testkit.WithSendStats(stats)))

	probe.Request(pid, &ping{n: 1}) // in the mailbox as an *actor.MessageEnvelope
	waitReset(t, stats)
	for _, list := range [][]any{stats.Posted, stats.Received} {
		for _, m := range list {
			if _, ok := m.(*actor.MessageEnvelope); ok {
				t.Fatalf("recorded an envelope: %v", list)
			}
		}
	}
	if countOf(stats.Posted, isPingMsg) != 1 || countOf(stats.Posted, func(m any) bool { _, ok := m.(*pong); return ok }) != 1 {
		t.Fatalf("Posted = %v, want the ping (posted) and the pong (sent)", stats.Posted)
	}
}

func TestTestMailboxStatsReceiveStatsCountTwice(t *testing.T) {
	system := newSystem(t)
	stats := testkit.NewTestMailboxStats(nil)
	pid := system.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {},
		testkit.WithMailboxStats(stats), testkit.WithReceiveStats(stats)))

	system.Root.Send(pid, &ping{n: 1})
	twice := func() bool { return countOf(stats.Snapshot().Received, isPingMsg) == 2 }
	if err := testkit.AwaitConditionAsync(twice, waitTimeout); err != nil {
		t.Fatalf("Received = %v, want the ping twice (middleware, then mailbox): %v", stats.Snapshot().Received, err)
	}
	select {
	case <-stats.Reset:
		t.Fatal("Reset signalled with no predicate")
	default:
	}
}

func TestTestMailboxStatsResetHoldsOneSignal(t *testing.T) {
	stats := testkit.NewTestMailboxStats(isPingMsg)

	stats.MessageReceived(&ping{n: 1})
	stats.MessageReceived(&ping{n: 2}) // must not block
	stats.MessageReceived("not a ping")
	waitReset(t, stats)
	select {
	case <-stats.Reset:
		t.Fatal("Reset held a second signal")
	default:
	}
}

func TestTestMailboxStatsConcurrentHooks(t *testing.T) {
	stats := testkit.NewTestMailboxStats(func(any) bool { return true })

	const n = 100
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stats.MessagePosted(i) })
		wg.Go(func() { stats.MessageReceived(i) })
		wg.Go(func() { stats.Snapshot() })
	}
	wg.Wait()
	if got := stats.Snapshot(); len(got.Posted) != n || len(got.Received) != n || len(got.Stats) != 2*n {
		t.Fatalf("recorded %d posted, %d received, %d events; want %d, %d, %d",
			len(got.Posted), len(got.Received), len(got.Stats), n, n, 2*n)
	}
}
