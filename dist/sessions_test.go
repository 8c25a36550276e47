package dist_test

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

// nextWithin is probe.next with its own bound.
func (p *probe) nextWithin(t testing.TB, d time.Duration, what string, match func(any) bool) any {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-p.ch:
			if match(m) {
				return m
			}
		case <-timer.C:
			t.Fatalf("probe: no %s within %v", what, d)
			return nil
		}
	}
}

func isUnreachable(m any) bool { _, ok := m.(*dist.NodeUnreachable); return ok }
func isReachable(m any) bool   { _, ok := m.(*dist.NodeReachable); return ok }

// TestSessionSurvivesBlackholeLongerThanIdleTimeout: with the default
// configuration (idle timeout 5 s, SessionGrace 15 s) a 7 s blackhole
// under sequenced load kills the connection, not the session: monitors
// see NodeUnreachable then NodeReachable and never NodeDown, and every
// message arrives exactly once, in order.
func TestSessionSurvivesBlackholeLongerThanIdleTimeout(t *testing.T) {
	fa := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	a, b := migrationPair(t, actors.Config{Transport: transport.Config{Adapter: fa}}, actors.Config{})
	monA, monB := monitorProbe(t, a, b.Name()), monitorProbe(t, b, a.Name())
	load := startSequenceLoad(t, a, b, 4, 256)
	load.waitProgress(t, 2000, "before the blackhole")

	fa.SetBlackhole(true)
	start := time.Now()
	const blackhole = 7 * time.Second
	monA.nextWithin(t, blackhole, "NodeUnreachable", isUnreachable)
	t.Logf("NodeUnreachable %v into the blackhole", time.Since(start).Round(time.Millisecond))
	time.Sleep(blackhole - time.Since(start))
	fa.SetBlackhole(false)
	healed := time.Now()
	monA.nextWithin(t, 15*time.Second, "NodeReachable", isReachable)
	t.Logf("NodeReachable %v after the blackhole ended", time.Since(healed).Round(time.Millisecond))
	load.waitProgress(t, 2000, "after the blackhole")
	load.stopAndCheck(t)
	monA.none(t, "NodeDown", isNodeDown)
	monB.none(t, "NodeDown", isNodeDown)
	st := a.SessionStats(b.Name())
	if st.Resumptions < 1 || st.DeadLettered != 0 || st.Sessions != 1 {
		t.Fatalf("session stats of a: %+v", st)
	}
}

// countedSender sends 1, 2, 3... to one receiver from its own goroutine,
// a burst at a time; pause holds it between bursts.
type countedSender struct {
	mu      sync.Mutex // held by the sender during a burst; by pause
	sent    atomic.Int64
	stopped chan struct{}
	done    chan struct{}
}

func startCountedSender(from *actors.Node, target *actor.PID) *countedSender {
	s := &countedSender{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stopped:
				return
			case <-time.After(2 * time.Millisecond):
			}
			s.mu.Lock()
			for range 20 {
				from.Root().Send(target, wrapperspb.Int64(s.sent.Load()+1))
				s.sent.Add(1)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *countedSender) stop() int64 {
	close(s.stopped)
	<-s.done
	return s.sent.Load()
}

// countingReceiver records every Int64Value it gets.
type countingReceiver struct {
	mu    sync.Mutex
	got   map[int64]int
	last  int64
	wrong int // out of order
}

func spawnCountingReceiver(t *testing.T, n *actors.Node, name string, r *countingReceiver) *actor.PID {
	t.Helper()
	return spawnNamed(t, n, actor.PropsFromFunc(func(c actor.Context) {
		v, ok := c.Message().(*wrapperspb.Int64Value)
		if !ok {
			return
		}
		r.mu.Lock()
		if r.got == nil {
			r.got = make(map[int64]int)
		}
		r.got[v.Value]++
		if v.Value <= r.last {
			r.wrong++
		}
		r.last = v.Value
		r.mu.Unlock()
	}), name)
}

func (r *countingReceiver) snapshot() (got map[int64]int, wrong int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	got = make(map[int64]int, len(r.got))
	for k, v := range r.got {
		got[k] = v
	}
	return got, r.wrong
}

// undeliveredSeqs returns the Int64Value dead letters for node, by value,
// and how many of them matched reason.
func undeliveredSeqs(d *deadLetters, node string, reason error) (seqs map[int64]int, matching int) {
	seqs = make(map[int64]int)
	for _, dl := range d.all() {
		v, ok := dl.Message.(*wrapperspb.Int64Value)
		if !ok || dl.Node != node {
			continue
		}
		seqs[v.Value]++
		if errors.Is(dl.Reason, reason) {
			matching++
		}
	}
	return seqs, matching
}

// checkAccounting checks that every message 1..sent was delivered exactly
// once or dead-lettered exactly once, never both.
func checkAccounting(t *testing.T, sent int64, delivered, dead map[int64]int) {
	t.Helper()
	bad := 0
	for i := int64(1); i <= sent; i++ {
		d, x := delivered[i], dead[i]
		if d+x != 1 {
			if bad < 5 {
				t.Errorf("message %d: delivered %d times, dead-lettered %d times", i, d, x)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d messages not accounted for exactly once", bad, sent)
	}
}

// pauseWhenAcknowledged holds the sender and waits until the peer has
// acknowledged everything, so the test knows exactly which messages were
// delivered before a fault (a message whose acknowledgement is lost with
// the connection would be both delivered and a dead letter, see
// docs/dist.md).
func pauseWhenAcknowledged(t *testing.T, s *countedSender, from *actors.Node, peer string) {
	t.Helper()
	s.mu.Lock()
	eventually(t, waitTimeout, func() bool { return from.SessionStats(peer).Unacknowledged == 0 },
		"every message to %s acknowledged", peer)
}

// TestSessionGraceExpiredDeadLettersEveryUndeliveredMessage: a blackhole
// longer than idle timeout plus SessionGrace ends the session; every
// message sent into it that was not delivered is a dead letter on the
// sender, exactly once, and SessionStats counts those the session's end
// dead-lettered.
func TestSessionGraceExpiredDeadLettersEveryUndeliveredMessage(t *testing.T) {
	const idle, grace = time.Second, 1500 * time.Millisecond
	fa := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	a, b := migrationPair(t,
		actors.Config{Transport: transport.Config{Adapter: fa, IdleTimeout: idle},
			Dist: dist.Config{SessionGrace: grace, ConnectTimeout: time.Second}},
		actors.Config{Transport: transport.Config{IdleTimeout: idle}, Dist: dist.Config{SessionGrace: grace}})
	dead := collectDeadLetters(t, a)
	mon := monitorProbe(t, a, b.Name())
	var recv countingReceiver
	spawnCountingReceiver(t, b, "counted", &recv)
	sender := startCountedSender(a, actor.NewPID(b.Name(), "counted"))
	eventually(t, waitTimeout, func() bool { got, _ := recv.snapshot(); return len(got) >= 1000 }, "1000 deliveries")

	pauseWhenAcknowledged(t, sender, a, b.Name())
	fa.SetBlackhole(true)
	start := time.Now()
	sender.mu.Unlock()
	mon.nextWithin(t, idle+waitTimeout, "NodeUnreachable", isUnreachable)
	down := mon.nextWithin(t, grace+waitTimeout, "NodeDown", isNodeDown).(*dist.NodeDown)
	t.Logf("NodeDown{%s} %v after the blackhole began: %v", down.Reason, time.Since(start).Round(time.Millisecond), down.Err)
	if down.Reason != dist.ReasonConnectionLost {
		t.Fatalf("NodeDown reason %q", down.Reason)
	}
	time.Sleep(100 * time.Millisecond) // a few sends after the end, which fail fast
	sent := sender.stop()

	var delivered, undelivered map[int64]int
	var ended int
	eventually(t, 3*waitTimeout, func() bool {
		delivered, _ = recv.snapshot()
		undelivered, ended = undeliveredSeqs(dead, b.Name(), dist.ErrSessionEnded)
		n := int64(0)
		for _, c := range delivered {
			n += int64(c)
		}
		for _, c := range undelivered {
			n += int64(c)
		}
		return n >= sent
	}, "every message delivered or dead-lettered")
	checkAccounting(t, sent, delivered, undelivered)
	if _, wrong := recv.snapshot(); wrong != 0 {
		t.Fatalf("%d deliveries out of order", wrong)
	}
	st := a.SessionStats(b.Name())
	if ended == 0 || st.DeadLettered != uint64(ended) {
		t.Fatalf("%d dead letters with ErrSessionEnded, SessionStats %+v", ended, st)
	}
	_, full := undeliveredSeqs(dead, b.Name(), dist.ErrQueueFull)
	_, unreachable := undeliveredSeqs(dead, b.Name(), dist.ErrUnreachable)
	_, connect := undeliveredSeqs(dead, b.Name(), dist.ErrConnectFailed)
	t.Logf("sent %d: %d delivered, %d dead letters: %d when the session ended, %d queue full, %d unreachable, %d connect failed",
		sent, len(delivered), len(undelivered), ended, full, unreachable, connect)
}

// TestSessionPeerRestartDeadLettersEveryUndeliveredMessage: b crashes
// mid-stream and comes back as a new incarnation within the grace window;
// a's reconnect finds the new incarnation, so the session ends
// (NodeDown{restarted}): what the old incarnation did not get is a dead
// letter on a, exactly once, and later messages reach the new incarnation.
func TestSessionPeerRestartDeadLettersEveryUndeliveredMessage(t *testing.T) {
	const idle = time.Second
	p := newRestartPair(t, "", idle)
	faults := adapter.NewFaulty(transport.UDPAdapter{Addr: p.bAddr})
	b := p.startB(t, faults)
	a := p.a
	dead := collectDeadLetters(t, a)
	mon := monitorProbe(t, a, b.Name())
	var oldRecv, newRecv countingReceiver
	spawnCountingReceiver(t, b, "counted", &oldRecv)
	sender := startCountedSender(a, actor.NewPID(b.Name(), "counted"))
	eventually(t, waitTimeout, func() bool { got, _ := oldRecv.snapshot(); return len(got) >= 1000 }, "1000 deliveries")

	pauseWhenAcknowledged(t, sender, a, b.Name())
	crashB(t, b, faults)
	sender.mu.Unlock()
	mon.nextWithin(t, idle+waitTimeout, "NodeUnreachable", isUnreachable)
	time.Sleep(200 * time.Millisecond) // messages queue for the session meanwhile

	b = p.startB(t, nil)
	spawnCountingReceiver(t, b, "counted", &newRecv)
	down := mon.nextWithin(t, 2*waitTimeout, "NodeDown", isNodeDown).(*dist.NodeDown)
	if down.Reason != dist.ReasonRestarted {
		t.Fatalf("NodeDown reason %q: %v", down.Reason, down.Err)
	}
	mon.nextWithin(t, waitTimeout, "NodeUp", func(m any) bool { _, ok := m.(*dist.NodeUp); return ok })
	eventually(t, waitTimeout, func() bool { got, _ := newRecv.snapshot(); return len(got) >= 100 }, "deliveries to the new incarnation")
	sent := sender.stop()

	var delivered, undelivered map[int64]int
	var ended int
	eventually(t, 2*waitTimeout, func() bool {
		oldGot, _ := oldRecv.snapshot()
		newGot, _ := newRecv.snapshot()
		delivered = oldGot
		for k, v := range newGot {
			delivered[k] += v
		}
		undelivered, ended = undeliveredSeqs(dead, b.Name(), dist.ErrSessionEnded)
		n := int64(0)
		for _, c := range delivered {
			n += int64(c)
		}
		for _, c := range undelivered {
			n += int64(c)
		}
		return n >= sent
	}, "every message delivered or dead-lettered")
	checkAccounting(t, sent, delivered, undelivered)
	st := a.SessionStats(b.Name())
	if ended == 0 || st.DeadLettered != uint64(ended) || st.Sessions != 2 {
		t.Fatalf("%d dead letters with ErrSessionEnded, SessionStats %+v", ended, st)
	}
	t.Logf("sent %d: %d delivered (old and new incarnation), %d dead letters when the old session ended",
		sent, len(delivered), ended)
}

// TestMigratePeerOnAcceptingSideHandsOver: the node that accepted the
// connection migrates too: MigratePeer hands the session over to a new
// connection it dials from the requested address, and answers once the
// peer resumed the session there. Under sequenced load both ways nothing
// is lost, duplicated or reordered, and no monitor hears of it.
func TestMigratePeerOnAcceptingSideHandsOver(t *testing.T) {
	a, b := migrationPair(t, actors.Config{}, actors.Config{})
	monA, monB := monitorProbe(t, a, b.Name()), monitorProbe(t, b, a.Name())
	ab := startSequenceLoad(t, a, b, 2, 256)
	ba := startSequenceLoad(t, b, a, 2, 256)
	ab.waitProgress(t, 2000, "a → b before the handover")
	ba.waitProgress(t, 2000, "b → a before the handover")

	start := time.Now()
	if err := b.MigratePeer(ctxTimeout(t), a.Name(), dist.MigrationLocalAddr("127.0.0.2")); err != nil {
		t.Fatalf("MigratePeer on the accepting side: %v", err)
	}
	t.Logf("handover took %v", time.Since(start).Round(time.Microsecond))
	after, err := b.PathStats(a.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !ipOf(t, after.LocalAddr).Equal(net.IPv4(127, 0, 0, 2)) {
		t.Fatalf("after the handover b's local address is %v", after.LocalAddr)
	}
	if st := b.SessionStats(a.Name()); st.Resumptions != 1 || st.Sessions != 1 || st.DeadLettered != 0 {
		t.Fatalf("b's session stats: %+v", st)
	}
	ab.waitProgress(t, 2000, "a → b after the handover")
	ba.waitProgress(t, 2000, "b → a after the handover")
	// b dialed the new connection, so it can now migrate it in place.
	if err := b.MigratePeer(ctxTimeout(t), a.Name()); err != nil {
		t.Fatalf("path migration after the handover: %v", err)
	}
	ab.stopAndCheck(t)
	ba.stopAndCheck(t)
	quiet := func(m any) bool { return isNodeDown(m) || isUnreachable(m) }
	monA.none(t, "NodeDown or NodeUnreachable", quiet)
	monB.none(t, "NodeDown or NodeUnreachable", quiet)
}

// TestMigrateRescuesDeadPathWithFullCongestionWindow: the old path dies
// with a burst in flight, so quic-go cannot probe a new path (its
// congestion window is full of data nothing will acknowledge,
// TestMigrateAfterDeadPathFilledCongestionWindow in transport). MigratePeer
// hands the session over to a new connection instead, within its timeout,
// and nothing is lost.
func TestMigrateRescuesDeadPathWithFullCongestionWindow(t *testing.T) {
	const idle = 5 * time.Second
	fa := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	a, b := migrationPair(t, actors.Config{Transport: transport.Config{Adapter: fa, IdleTimeout: idle}},
		actors.Config{Transport: transport.Config{IdleTimeout: idle}})
	mon := monitorProbe(t, a, b.Name())
	var bulk atomic.Int64
	spawnNamed(t, b, actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.BytesValue); ok {
			bulk.Add(1)
		}
	}), "bulk")
	load := startSequenceLoad(t, a, b, 4, 256)
	load.waitProgress(t, 2000, "before the path dies")

	fa.SetBlackhole(true)
	const bursts = 32
	for range bursts { // 2 MiB into the dead path
		a.Root().Send(actor.NewPID(b.Name(), "bulk"), wrapperspb.Bytes(make([]byte, 64<<10)))
	}
	load.waitStalled(t, 200*time.Millisecond)
	start := time.Now()
	if err := a.MigratePeer(ctxTimeout(t), b.Name(), dist.MigrationLocalAddr("127.0.0.2"), dist.MigrationTimeout(4*time.Second)); err != nil {
		t.Fatalf("MigratePeer from a dead path: %v", err)
	}
	t.Logf("rescued %v after MigratePeer began", time.Since(start).Round(time.Millisecond))
	load.waitProgress(t, 2000, "after the rescue")
	load.stopAndCheck(t)
	eventually(t, waitTimeout, func() bool { return bulk.Load() == bursts }, "%d bulk messages (got %d)", bursts, bulk.Load())
	mon.none(t, "NodeDown", isNodeDown)
	if st := a.SessionStats(b.Name()); st.DeadLettered != 0 || st.Sessions != 1 {
		t.Fatalf("session stats: %+v", st)
	}
}

// TestSessionsWithAnOlderPeer: a peer that does not announce
// CAPABILITY_SESSIONS (a build before sessions) still talks: nothing is
// kept for acknowledgements it will never send, and the side that
// accepted its connection cannot hand the session over.
func TestSessionsWithAnOlderPeer(t *testing.T) {
	start := func(name string, older bool, peers map[string]string) (*dist.Manager, *actor.ActorSystem, *transport.Transport) {
		var before func(*dist.Manager)
		if older {
			before = dist.WithoutSessions
		}
		m, system, tr := startBareManager(t, name, peers, before)
		if _, err := system.Root.SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
			if v, ok := c.Message().(*wrapperspb.Int64Value); ok {
				c.Respond(v)
			}
		}), "echo"); err != nil {
			t.Fatal(err)
		}
		return m, system, tr
	}
	modern, msys, mtr := start("modern@localhost", false, nil)
	older, osys, _ := start("older@localhost", true, map[string]string{"modern@localhost": mtr.Addr().String()})
	for i := range int64(200) {
		if _, err := osys.Root.RequestFuture(actor.NewPID("modern@localhost", "echo"), wrapperspb.Int64(i), waitTimeout).Result(); err != nil {
			t.Fatalf("older → modern %d: %v", i, err)
		}
		if _, err := msys.Root.RequestFuture(actor.NewPID("older@localhost", "echo"), wrapperspb.Int64(i), waitTimeout).Result(); err != nil {
			t.Fatalf("modern → older %d: %v", i, err)
		}
	}
	if st := modern.SessionStats("older@localhost"); st.Unacknowledged != 0 || st.Sessions != 1 {
		t.Fatalf("modern's session with the older peer: %+v", st)
	}
	if err := modern.MigratePeer(ctxTimeout(t), "older@localhost"); !errors.Is(err, dist.ErrMigrationNotAllowed) {
		t.Fatalf("accepting side MigratePeer with an older peer: %v, want ErrMigrationNotAllowed", err)
	}
	if err := older.MigratePeer(ctxTimeout(t), "modern@localhost"); err != nil {
		t.Fatalf("the older peer's own path migration: %v", err)
	}
}

// TestSessionResendsWithoutNewTraffic: messages written into a connection
// that dies are resent on the connection that resumes the session even
// when nothing new is sent after it, and messages sent while no
// connection was up follow them, all in order.
func TestSessionResendsWithoutNewTraffic(t *testing.T) {
	const idle = time.Second
	fa := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
	a, b := migrationPair(t,
		actors.Config{Transport: transport.Config{Adapter: fa, IdleTimeout: idle}},
		actors.Config{Transport: transport.Config{IdleTimeout: idle}})
	mon := monitorProbe(t, a, b.Name())
	var recv countingReceiver
	spawnCountingReceiver(t, b, "counted", &recv)
	target := actor.NewPID(b.Name(), "counted")
	a.Root().Send(target, wrapperspb.Int64(1))
	eventually(t, waitTimeout, func() bool { got, _ := recv.snapshot(); return len(got) == 1 }, "the first message")

	fa.SetBlackhole(true)
	for i := int64(2); i <= 500; i++ { // into the connection that dies
		a.Root().Send(target, wrapperspb.Int64(i))
	}
	mon.nextWithin(t, idle+waitTimeout, "NodeUnreachable", isUnreachable)
	for i := int64(501); i <= 1000; i++ { // while no connection is up
		a.Root().Send(target, wrapperspb.Int64(i))
	}
	fa.SetBlackhole(false)
	mon.nextWithin(t, 2*waitTimeout, "NodeReachable", isReachable)
	eventually(t, waitTimeout, func() bool { got, _ := recv.snapshot(); return len(got) == 1000 }, "all 1000 messages")
	got, wrong := recv.snapshot()
	for i := int64(1); i <= 1000; i++ {
		if got[i] != 1 {
			t.Fatalf("message %d delivered %d times", i, got[i])
		}
	}
	if wrong != 0 {
		t.Fatalf("%d deliveries out of order", wrong)
	}
	if st := a.SessionStats(b.Name()); st.DeadLettered != 0 || st.Resumptions != 1 {
		t.Fatalf("session stats: %+v", st)
	}
}
