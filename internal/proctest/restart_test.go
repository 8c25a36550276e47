package proctest_test

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cask-p2p/cask/internal/proctest"
)

// Issue 14, deliverable 5: restarts of a node run as an OS process, seen
// from an old peer that keeps running. The old peer, a, joins through
// b, so it knows b's address from its flags; b has no contact of its
// own unless a case says so, so after a restart it is a's request that
// finds the new process. b restarts on the same address (a port picked
// before the first start).

// idleTimeout is the -idle-timeout both processes run with: a crashed
// peer's connection is declared dead after this long.
const idleTimeout = 2 * time.Second

// setCookie gives the test's processes a shared cluster secret.
func setCookie(t *testing.T) {
	secret := make([]byte, 16)
	rand.Read(secret)
	t.Setenv("CASK_COOKIE", hex.EncodeToString(secret))
}

// freeAddr returns ip:port with a UDP port that was free a moment ago.
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

// restartPair is an old peer a and the node b that restarts.
type restartPair struct {
	a, b   *proctest.Proc
	aName  string
	bName  string
	bStart proctest.Event
}

// startPair starts b with bArgs added to its flags, then a joining
// through b, and waits until a's ping of b is answered.
func startPair(t *testing.T, bArgs ...string) *restartPair {
	t.Helper()
	return startPairWith(t, nil, bArgs)
}

// startPairWith is startPair with aArgs added to a's flags.
func startPairWith(t *testing.T, aArgs, bArgs []string) *restartPair {
	t.Helper()
	bin := proctest.Build(t)
	setCookie(t)
	idle := idleTimeout.String()
	r := &restartPair{aName: "a@restart", bName: "b@restart"}
	bAddr := freeAddr(t, "127.0.0.3")
	r.b = proctest.Start(t, bin, append([]string{"-name", r.bName, "-listen", bAddr, "-idle-timeout", idle, "-log", "info"}, bArgs...)...)
	r.bStart = r.b.MustWaitFor(t, proctest.Kind("started"), 60*time.Second)
	r.a = proctest.Start(t, bin, append([]string{"-name", r.aName, "-listen", "127.0.0.2:0", "-idle-timeout", idle, "-log", "info",
		"-contact", r.bName, "-contact-addr", bAddr, "-ping-timeout", "1s"}, aArgs...)...)
	r.a.MustWaitFor(t, proctest.Kind("joined"), 60*time.Second)
	if _, err := r.pingUntilAnswered(t, time.Time{}, 30*time.Second); err != nil {
		t.Fatalf("before the restart: %v", err)
	}
	return r
}

// pingUntilAnswered has a ping b every 250 ms until a ping ends with an
// answer after since, and returns that pong.
func (r *restartPair) pingUntilAnswered(t *testing.T, since time.Time, timeout time.Duration) (proctest.Event, error) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			r.a.Send("ping " + r.bName)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(done)
	return r.a.WaitFor(func(e proctest.Event) bool {
		return e.Kind == "pong" && e.Peer == r.bName && e.Err == "" && e.Time.After(since)
	}, timeout)
}

// restarted starts b again with the same flags and waits for its
// "started" event.
func (r *restartPair) restarted(t *testing.T) proctest.Event {
	t.Helper()
	r.b = r.b.Restart(t)
	r.bStart = r.b.MustWaitFor(t, proctest.Kind("started"), 60*time.Second)
	return r.bStart
}

// answeredWithin pings b from a until answered and fails t unless the
// answer came within limit of b's latest "started" event.
func (r *restartPair) answeredWithin(t *testing.T, limit time.Duration) {
	t.Helper()
	pong, err := r.pingUntilAnswered(t, r.bStart.Time, limit+30*time.Second)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	took := pong.Time.Sub(r.bStart.Time)
	t.Logf("a's request answered %v after the new process started (limit %v)", took.Round(time.Millisecond), limit)
	if took > limit {
		t.Fatalf("a's request was answered %v after the new process started, want within %v", took.Round(time.Millisecond), limit)
	}
}

// noRefusal fails t if either process logged an identity refusal.
func noRefusal(t *testing.T, procs ...*proctest.Proc) {
	t.Helper()
	for _, p := range procs {
		for _, line := range strings.Split(p.Stderr(), "\n") {
			if strings.Contains(line, "identity: refused peer") || strings.Contains(line, "identity: peer refused this node") {
				t.Errorf("refusal logged: %s", line)
			}
		}
	}
}

// 5.1: kill -9 and a restart without a DataDir. The new process has a
// new (ephemeral) key, which a admits; a's old connection dies of the
// idle timeout, so a's request is answered within it plus 2 s.
func TestRestartAfterKillWithoutDataDir(t *testing.T) {
	r := startPair(t)
	old := r.bStart
	r.b.Kill()
	r.restarted(t)
	if r.bStart.Key == old.Key {
		t.Errorf("a restart without a DataDir kept key %s", old.Key)
	}
	r.answeredWithin(t, idleTimeout+2*time.Second)
	noRefusal(t, r.a, r.b)
}

// 5.1: a restarted node that dials first (it joins through its old
// peer): the old peer reports NodeDown{restarted}, then NodeUp with the
// new incarnation, and its request is answered.
func TestRestartAfterKillDialsFirst(t *testing.T) {
	bin := proctest.Build(t)
	setCookie(t)
	idle := idleTimeout.String()
	a := proctest.Start(t, bin, "-name", "a@restart", "-listen", "127.0.0.2:0", "-idle-timeout", idle, "-log", "info", "-ping-timeout", "1s")
	aAddr := a.MustWaitFor(t, proctest.Kind("started"), 60*time.Second).Addr
	b := proctest.Start(t, bin, "-name", "b@restart", "-listen", freeAddr(t, "127.0.0.3"), "-idle-timeout", idle, "-log", "info",
		"-contact", "a@restart", "-contact-addr", aAddr)
	first := b.MustWaitFor(t, proctest.Kind("started"), 60*time.Second)
	b.MustWaitFor(t, proctest.Kind("joined"), 60*time.Second)
	a.MustWaitFor(t, func(e proctest.Event) bool {
		return e.Kind == "node_up" && e.Peer == "b@restart" && e.Incarnation == first.Incarnation
	}, 30*time.Second)

	b.Kill()
	b = b.Restart(t)
	second := b.MustWaitFor(t, proctest.Kind("started"), 60*time.Second)
	// Within the idle timeout: the new process's connection, not the
	// old one's death, tells a that b restarted.
	down := a.MustWaitFor(t, func(e proctest.Event) bool {
		return e.Kind == "node_down" && e.Peer == "b@restart" && e.Time.After(second.Time)
	}, 30*time.Second)
	if down.Reason != "restarted" {
		t.Fatalf("a reported NodeDown{%s} for b, want restarted (%s)", down.Reason, down.Raw)
	}
	up := a.MustWaitFor(t, func(e proctest.Event) bool {
		return e.Kind == "node_up" && e.Peer == "b@restart" && e.Time.After(second.Time)
	}, 30*time.Second)
	if up.Incarnation != second.Incarnation {
		t.Fatalf("a's NodeUp after the restart has incarnation %s, the new process %s", up.Incarnation, second.Incarnation)
	}
	if took := down.Time.Sub(second.Time); took > idleTimeout {
		t.Errorf("NodeDown{restarted} came %v after the new process started, want within the idle timeout %v (the new process dials first)", took, idleTimeout)
	}
	r := &restartPair{a: a, b: b, aName: "a@restart", bName: "b@restart", bStart: second}
	r.answeredWithin(t, 2*time.Second)
	noRefusal(t, a, b)
}

// 5.2: kill -9 and a restart with the same DataDir. The new process has
// the same key and the same stateless reset key, so a's next packet on
// the old connection draws a stateless reset: answered within 2 s, with
// no wait for the idle timeout.
func TestRestartAfterKillWithDataDir(t *testing.T) {
	r := startPair(t, "-data-dir", t.TempDir())
	old := r.bStart
	r.b.Kill()
	r.restarted(t)
	if r.bStart.Key != old.Key {
		t.Errorf("a restart with the same DataDir changed the key %s to %s", old.Key, r.bStart.Key)
	}
	r.answeredWithin(t, 2*time.Second)
	noRefusal(t, r.a, r.b)
}

// 5.3: SIGTERM and a restart, with and without a DataDir: a sees
// NodeDown{peer_shutdown}, and its request is answered within 2 s of the
// new process's start.
func TestRestartAfterTerm(t *testing.T) {
	for _, withDataDir := range []bool{false, true} {
		name := "without DataDir"
		if withDataDir {
			name = "with DataDir"
		}
		t.Run(name, func(t *testing.T) {
			var args []string
			if withDataDir {
				args = []string{"-data-dir", t.TempDir()}
			}
			r := startPair(t, args...)
			termAt := time.Now()
			if err := r.b.Term(); err != nil {
				t.Fatal(err)
			}
			if err := r.b.Wait(30 * time.Second); err != nil {
				t.Fatalf("b after SIGTERM: %v", err)
			}
			down := r.a.MustWaitFor(t, func(e proctest.Event) bool {
				return e.Kind == "node_down" && e.Peer == r.bName && e.Time.After(termAt)
			}, 30*time.Second)
			if down.Reason != "peer_shutdown" {
				t.Fatalf("a reported NodeDown{%s} for b after its SIGTERM, want peer_shutdown (%s)", down.Reason, down.Raw)
			}
			r.restarted(t)
			r.answeredWithin(t, 2*time.Second)
			noRefusal(t, r.a, r.b)
		})
	}
}

// warnLines returns the lines of p's stderr that contain every one of
// subs.
func warnLines(p *proctest.Proc, subs ...string) []string {
	var out []string
	for _, line := range strings.Split(p.Stderr(), "\n") {
		ok := strings.Contains(line, "level=WARN")
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// refusedFor pings b from a for d and fails t if any ping is answered.
func (r *restartPair) refusedFor(t *testing.T, d time.Duration) {
	t.Helper()
	if pong, err := r.pingUntilAnswered(t, r.bStart.Time, d); err == nil {
		t.Fatalf("a's request to b was answered (%s), want a refusal", pong.Raw)
	}
}

// 5.4: b restarts with its DataDir's keys/ removed, so with a new
// persistent key. a, which pinned b's old key in its own DataDir, refuses
// it; each side logs one WARN line saying what to do (a names its pin
// file, b its node.key). After "untrust" on a (Node.UntrustPeer), b is
// admitted.
func TestRestartWithNewKeyIsRefusedUntilUntrusted(t *testing.T) {
	aDir, bDir := t.TempDir(), t.TempDir()
	r := startPairWith(t, []string{"-data-dir", aDir}, []string{"-data-dir", bDir})
	old := r.bStart
	r.b.Kill()
	if err := os.RemoveAll(filepath.Join(bDir, "keys")); err != nil {
		t.Fatal(err)
	}
	r.restarted(t)
	if r.bStart.Key == old.Key {
		t.Fatalf("b kept key %s with its keys/ removed", old.Key)
	}
	r.refusedFor(t, 3*time.Second)

	pin := filepath.Join(aDir, "keys", "trusted", r.bName+".pub")
	nodeKey := filepath.Join(bDir, "keys", "node.key")
	if lines := warnLines(r.a, "identity: refused peer", r.bName); len(lines) != 1 || !strings.Contains(lines[0], pin) {
		t.Errorf("a logged %d refusal lines, want one naming %s:\n%s", len(lines), pin, strings.Join(lines, "\n"))
	}
	if lines := warnLines(r.b, "identity: peer refused this node"); len(lines) != 1 || !strings.Contains(lines[0], nodeKey) {
		t.Errorf("b logged %d refusal lines, want one naming %s:\n%s", len(lines), nodeKey, strings.Join(lines, "\n"))
	}

	since := time.Now()
	r.a.Send("untrust " + r.bName)
	if ev := r.a.MustWaitFor(t, func(e proctest.Event) bool {
		return e.Kind == "untrusted" && e.Time.After(since)
	}, 10*time.Second); ev.Err != "" {
		t.Fatalf("untrust: %s", ev.Err)
	}
	if _, err := r.pingUntilAnswered(t, since, 10*time.Second); err != nil {
		t.Fatalf("after UntrustPeer: %v", err)
	}
}

// 5.5: b ran with a DataDir and restarts without one (the downgrade): a,
// which pinned b's persistent key, refuses b's ephemeral key, and b's
// log tells its operator to start it with its DataDir.
func TestRestartWithoutTheDataDirIsRefused(t *testing.T) {
	bDir := t.TempDir()
	r := startPair(t, "-data-dir", bDir)
	r.b.Kill()
	args := r.b.Args()
	for i, a := range args {
		if a == "-data-dir" {
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	r.b = proctest.Start(t, proctest.Build(t), args...)
	r.bStart = r.b.MustWaitFor(t, proctest.Kind("started"), 60*time.Second)
	r.refusedFor(t, 3*time.Second)
	if lines := warnLines(r.b, "identity: peer refused this node", "start it with its DataDir"); len(lines) != 1 {
		t.Errorf("b logged %d lines telling its operator to start it with its DataDir, want 1; stderr:\n%s", len(lines), r.b.Stderr())
	}
	if lines := warnLines(r.a, "identity: refused peer", r.bName, "with its DataDir"); len(lines) != 1 {
		t.Errorf("a logged %d refusal lines naming b's DataDir, want 1; stderr:\n%s", len(lines), r.a.Stderr())
	}
}
