package proctest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/cask-p2p/cask/internal/proctest"
)

// Issue 13, deliverable 3, as OS processes: b is killed (kill -9) with
// numbered messages from a in flight and more sent after it died; b
// restarts as a new incarnation, a's reconnect finds it, and the session
// ends (NodeDown{restarted}). Every message b's old process had not
// received is a dead letter on a with dist.ErrSessionEnded, counted
// exactly, and SessionStats agrees.
func TestRestartMidStreamDeadLettersEveryUndeliveredMessage(t *testing.T) {
	r := startPair(t)
	b := r.bName
	// Before the crash: sent, received and acknowledged.
	const before, after = 5000, 3000
	r.a.Send(fmt.Sprintf("send %s %d", b, before))
	r.a.MustWaitFor(t, func(e proctest.Event) bool { return e.Kind == "sent" && e.Sent == before }, 30*time.Second)
	tally := func() proctest.Event {
		t.Helper()
		since := time.Now()
		r.a.Send("tally " + b)
		return r.a.MustWaitFor(t, func(e proctest.Event) bool { return e.Kind == "tally" && !e.Time.Before(since) }, 30*time.Second)
	}
	deadline := time.Now().Add(30 * time.Second)
	for tally().Unacknowledged != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a's messages to b were not acknowledged within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	since := time.Now()
	r.b.Send("received")
	got := r.b.MustWaitFor(t, func(e proctest.Event) bool { return e.Kind == "received" && !e.Time.Before(since) }, 30*time.Second)
	if got.Received != before || got.Duplicates != 0 || got.Reordered != 0 {
		t.Fatalf("b's counter before the crash: %s", got.Raw)
	}

	killed := time.Now()
	r.b.Kill()
	r.a.Send(fmt.Sprintf("send %s %d", b, after))
	r.a.MustWaitFor(t, func(e proctest.Event) bool { return e.Kind == "sent" && e.Sent == before+after }, 30*time.Second)
	unreachable := r.a.MustWaitFor(t, func(e proctest.Event) bool { return e.Kind == "node_unreachable" && e.Peer == b }, idleTimeout+30*time.Second)
	restarted := r.restarted(t)
	down := r.a.MustWaitFor(t, func(e proctest.Event) bool {
		return e.Kind == "node_down" && e.Peer == b && e.Time.After(unreachable.Time)
	}, 30*time.Second)
	if down.Reason != "restarted" {
		t.Fatalf("a reported NodeDown{%s} for b, want restarted (%s)", down.Reason, down.Raw)
	}
	t.Logf("NodeUnreachable %v after the kill (idle timeout %v); NodeDown{restarted} %v after the new process started",
		unreachable.Time.Sub(killed).Round(time.Millisecond), idleTimeout, down.Time.Sub(restarted.Time).Round(time.Millisecond))
	var last proctest.Event
	deadline = time.Now().Add(30 * time.Second)
	for last = tally(); last.DeadLettered < after && time.Now().Before(deadline); last = tally() {
		time.Sleep(20 * time.Millisecond)
	}
	if last.DeadLettered != after || last.SessionEnded != after || last.StatsDeadLettered != after {
		t.Fatalf("after the session ended: %s; want %d dead letters, all with ErrSessionEnded and counted by SessionStats", last.Raw, after)
	}
	t.Logf("sent %d: %d received by the old process, %d dead letters with ErrSessionEnded", last.Sent, before, last.SessionEnded)
}
