package dist_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// recordingResolver is a user resolver: it answers from a fixed map (or
// ErrUnknownNode) and records when it was asked, one call per connect
// attempt. It names itself "recording" in connect errors.
type recordingResolver struct {
	addrs map[string]string
	mu    sync.Mutex
	calls []time.Time
}

func (r *recordingResolver) String() string { return "recording" }

func (r *recordingResolver) Resolve(_ context.Context, node string) ([]net.Addr, error) {
	r.mu.Lock()
	r.calls = append(r.calls, time.Now())
	r.mu.Unlock()
	addr, ok := r.addrs[node]
	if !ok {
		return nil, dist.ErrUnknownNode
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return []net.Addr{ua}, nil
}

func (r *recordingResolver) attempts() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.calls...)
}

// deadAddr is a loopback UDP address nothing listens on any more: that
// of a node started and stopped.
func deadAddr(t *testing.T) string {
	t.Helper()
	n := startNode(t, "gone@localhost", actors.Config{})
	addr := n.Addr().String()
	_ = n.Stop()
	return addr
}

// TestUnreachableSendsFailFast: once a connect to a peer failed, 1,000
// sends to it are dead letters at once, each carrying ErrUnreachable and
// the connect error (which names the user resolver that gave the
// address), and none starts a connect attempt.
func TestUnreachableSendsFailFast(t *testing.T) {
	peer := "b@localhost"
	dead := deadAddr(t)
	res := &recordingResolver{addrs: map[string]string{peer: dead}}
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{
		DisableDNS: true, Resolvers: []dist.Resolver{res}, ConnectTimeout: time.Second,
		// long enough that no attempt is due while the sends run
		ReconnectBackoffMin: 3 * time.Second, ReconnectBackoffMax: 5 * time.Second,
	}})
	start := time.Now()
	err := a.Connect(ctxTimeout(t), peer)
	t.Logf("connect to a dead peer failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if !errors.Is(err, dist.ErrConnectFailed) {
		t.Fatalf("connect err = %v, want ErrConnectFailed", err)
	}
	if want := "recording: " + peer + " -> " + dead; !strings.Contains(err.Error(), want) {
		t.Fatalf("connect err %q does not name the source %q", err, want)
	}
	attempts := len(res.attempts())

	dl := collectDeadLetters(t, a)
	unreachable := countDeadLetters(t, a, dist.ErrUnreachable)
	pid := actor.NewPID(peer, "echo")
	const sends = 1000
	start = time.Now()
	for range sends {
		a.Root().Send(pid, wrapperspb.String("boo"))
	}
	eventually(t, waitTimeout, func() bool { return unreachable.Load() == sends }, "%d dead letters (got %d)", sends, unreachable.Load())
	took := time.Since(start)
	t.Logf("%d sends to an unreachable peer: all dead letters after %v", sends, took.Round(time.Microsecond))
	if took > 500*time.Millisecond {
		t.Errorf("%d sends took %v to fail, want well under a second", sends, took)
	}
	got := dl.waitFor(t, dist.ErrUnreachable)
	if !errors.Is(got.Reason, dist.ErrConnectFailed) || !strings.Contains(got.Reason.Error(), "recording: "+peer+" -> "+dead) {
		t.Errorf("dead letter reason %q lacks the connect error", got.Reason)
	}
	if n := len(res.attempts()); n != attempts {
		t.Errorf("%d connect attempts during the sends, want none", n-attempts)
	}

	// A request fails at once too.
	start = time.Now()
	if _, err := a.Root().RequestFuture(pid, wrapperspb.String("q"), waitTimeout).Result(); !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("request err = %v, want a dead letter", err)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("request failed after %v", d)
	}
	// An explicit Connect does not fail fast: it tries.
	if err := a.Connect(ctxTimeout(t), peer); !errors.Is(err, dist.ErrConnectFailed) {
		t.Errorf("second connect err = %v", err)
	}
	if n := len(res.attempts()); n != attempts+1 {
		t.Errorf("explicit Connect made %d attempts, want 1", n-attempts)
	}
}

// TestReconnectBackoffSchedule: a sender that keeps sending to a name no
// source knows causes connect attempts spaced by the backoff: doubling
// from ReconnectBackoffMin to ReconnectBackoffMax, within the jitter.
func TestReconnectBackoffSchedule(t *testing.T) {
	res := &recordingResolver{}
	lo, hi := 40*time.Millisecond, 320*time.Millisecond
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{
		DisableDNS: true, Resolvers: []dist.Resolver{res}, ReconnectBackoffMin: lo, ReconnectBackoffMax: hi,
	}})
	pid := actor.NewPID("nobody@localhost", "x")
	const want = 7
	deadline := time.Now().Add(10 * time.Second)
	for len(res.attempts()) < want && time.Now().Before(deadline) {
		a.Root().Send(pid, wrapperspb.String("boo"))
		time.Sleep(2 * time.Millisecond)
	}
	at := res.attempts()
	if len(at) < want {
		t.Fatalf("%d connect attempts in 10 s, want %d", len(at), want)
	}
	nominal := lo
	for i := 1; i < want; i++ {
		gap := at[i].Sub(at[i-1])
		t.Logf("attempt %d: %v after the previous (nominal backoff %v)", i+1, gap.Round(time.Millisecond), nominal)
		if gap < time.Duration(float64(nominal)*(1-dist.ReconnectBackoffJitter))-time.Millisecond {
			t.Errorf("attempt %d came %v after the previous, before the backoff (%v -20%%)", i+1, gap, nominal)
		}
		if gap > min(time.Duration(float64(nominal)*(1+dist.ReconnectBackoffJitter)), hi)+500*time.Millisecond {
			t.Errorf("attempt %d came %v after the previous, far past the backoff %v", i+1, gap, nominal)
		}
		nominal = min(nominal*dist.ReconnectBackoffFactor, hi)
	}
}

// TestRecoveryAfterBackoff: requests to a peer that is down fail fast;
// once it is up, a request succeeds within ReconnectBackoffMax + 1 s.
func TestRecoveryAfterBackoff(t *testing.T) {
	peer := "b@localhost"
	dead := deadAddr(t)
	const backoffMax = time.Second
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{
		DisableDNS: true, Peers: map[string]string{peer: dead}, ConnectTimeout: 300 * time.Millisecond,
		ReconnectBackoffMax: backoffMax,
	}})
	pid := actor.NewPID(peer, "echo")
	// Fail for 4 s: attempts (300 ms each, to a dead port) with backoffs
	// of 100, 200, 400, 800 ms and then the maximum between them.
	start := time.Now()
	for time.Since(start) < 4*time.Second {
		if _, err := echoRequest(a, pid, "x"); err == nil {
			t.Fatal("request to a dead peer answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b := startNode(t, peer, actors.Config{Transport: transport.Config{ListenAddr: dead}})
	spawnEcho(t, b, "echo")
	up := time.Now()
	for {
		_, err := echoRequest(a, pid, "x")
		if err == nil {
			break
		}
		if time.Since(up) > backoffMax+time.Second {
			t.Fatalf("no answer %v after the peer came back: %v", time.Since(up), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("first answer %v after the peer came back", time.Since(up).Round(time.Millisecond))
}

// TestDisconnect: Disconnect closes the session on purpose, monitors see
// NodeDown{disconnected}, and the next request opens a new session.
func TestDisconnect(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{Peers: peersOf(b), DisableDNS: true}})
	echo := spawnEcho(t, b, "echo")
	remote := actor.NewPID(b.Name(), echo.Id)
	mon := monitorProbe(t, a, b.Name())
	mustEcho(t, a, remote, "one")
	mon.nodeUp(t, b.Name())
	onB := monitorProbe(t, b, a.Name())
	onB.nodeUp(t, a.Name())

	if err := a.Disconnect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if down := mon.nodeDown(t, b.Name()); down.Reason != dist.ReasonDisconnected {
		t.Fatalf("NodeDown reason %q, want %q", down.Reason, dist.ReasonDisconnected)
	}
	if down := onB.nodeDown(t, a.Name()); down.Reason != dist.ReasonPeerShutdown {
		t.Errorf("the peer saw NodeDown reason %q, want %q", down.Reason, dist.ReasonPeerShutdown)
	}
	eventually(t, waitTimeout, func() bool { return len(a.Nodes()) == 0 }, "no session after Disconnect (%v)", a.Nodes())
	mustEcho(t, a, remote, "two")
	mon.nodeUp(t, b.Name())

	if err := a.Disconnect(ctxTimeout(t), "c@localhost"); !errors.Is(err, dist.ErrNotConnected) {
		t.Errorf("disconnect from a peer never connected: %v, want ErrNotConnected", err)
	}
}

// TestConnectErrorNamesDNSSource: an address guessed by DNS is named as
// such in the connect error.
func TestConnectErrorNamesDNSSource(t *testing.T) {
	dead := deadAddr(t)
	_, port, _ := net.SplitHostPort(dead)
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DiscoveryPort: p, ConnectTimeout: time.Second}})
	err := a.Connect(ctxTimeout(t), "b@localhost")
	if want := "dns: localhost -> 127.0.0.1:" + port + " (DiscoveryPort)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("connect err %v does not name %q", err, want)
	}
	t.Logf("connect error: %v", err)
}

// nameRecorder is a user resolver that knows no name and records when it
// was asked about each, one call per connect attempt.
type nameRecorder struct {
	mu    sync.Mutex
	calls map[string][]time.Time
}

func (r *nameRecorder) String() string { return "names" }

func (r *nameRecorder) Resolve(_ context.Context, node string) ([]net.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls = make(map[string][]time.Time)
	}
	r.calls[node] = append(r.calls[node], time.Now())
	return nil, dist.ErrUnknownNode
}

func (r *nameRecorder) attempts(node string) []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.calls[node]...)
}

// TestFailureCountOutlivesController: when a failed name's first delay
// runs out with nothing to send, its controller and endpoint are freed at
// once, but its failure count stays with the manager actor: a send soon
// after fails and waits the second delay, not the first. Once the count
// ran out (its delay, then at least a second more), the schedule starts
// from the first delay again.
func TestFailureCountOutlivesController(t *testing.T) {
	res := &nameRecorder{}
	lo, hi := 300*time.Millisecond, 1600*time.Millisecond
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{
		DisableDNS: true, Resolvers: []dist.Resolver{res}, ReconnectBackoffMin: lo, ReconnectBackoffMax: hi,
	}})
	jitter := func(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }
	low, high := 1-dist.ReconnectBackoffJitter, 1+dist.ReconnectBackoffJitter
	// sendUntil sends to node every 5 ms until it has had n attempts.
	sendUntil := func(node string, n int) []time.Time {
		pid := actor.NewPID(node, "x")
		deadline := time.Now().Add(10 * time.Second)
		for {
			if at := res.attempts(node); len(at) >= n {
				return at
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connect attempts in 10 s, want %d", node, len(res.attempts(node)), n)
			}
			a.Root().Send(pid, wrapperspb.String("boo"))
			time.Sleep(5 * time.Millisecond)
		}
	}

	// The count is kept for at least a second after the first delay ends;
	// a machine stalled for that long between the retirement and the next
	// send proves nothing, and the try is made again with another name.
	const tries = 3
	for try := 1; ; try++ {
		node := fmt.Sprintf("nobody%d@localhost", try)
		stale, _ := a.System().ProcessRegistry.Get(actor.NewPID(node, "x"))
		at := sendUntil(node, 1)
		eventually(t, waitTimeout, func() bool { return dist.EndpointRetired(stale) }, "%s's endpoint retired", node)
		retired := time.Now()
		at = sendUntil(node, 2)
		t.Logf("try %d: endpoint retired %v after the first attempt, second attempt %v after that",
			try, retired.Sub(at[0]).Round(time.Millisecond), at[1].Sub(retired).Round(time.Millisecond))
		if at[1].Sub(at[0]) >= jitter(lo, low)+dist.MinRemember {
			if try == tries {
				t.Fatalf("second attempt %v after the first in %d tries: the endpoint was not freed when the first delay ran out, or the machine stalled",
					at[1].Sub(at[0]), tries)
			}
			continue
		}
		at = sendUntil(node, 3)
		gap := at[2].Sub(at[1])
		t.Logf("third attempt %v after the second (nominal %v)", gap.Round(time.Millisecond), 2*lo)
		if gap < jitter(2*lo, low)-time.Millisecond {
			t.Fatalf("third attempt %v after the second, before the second delay (%v -20%%): the failure count was lost with the controller", gap, 2*lo)
		}

		// Quiet for longer than the third delay and its remembering: the
		// count is forgotten, the next failures wait the first delay.
		time.Sleep(2*min(jitter(4*lo, high), hi) + 300*time.Millisecond)
		at = sendUntil(node, 5)
		gap = at[4].Sub(at[3])
		t.Logf("after a pause, fifth attempt %v after the fourth (nominal %v)", gap.Round(time.Millisecond), lo)
		if gap > jitter(lo, high)+500*time.Millisecond {
			t.Fatalf("fifth attempt %v after the fourth, want the first delay (%v): the count was not forgotten", gap, lo)
		}
		return
	}
}
