package dist_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
	"github.com/cask-p2p/cask/transport/identity"
)

// Restarts with the default configuration (docs/dist.md, Incarnations;
// docs/security.md, Trust): a node restarted with the same Config, with
// or without a DataDir, is talking to its old peers again within
// restartBudget of a graceful restart, and within the idle timeout plus
// restartBudget of a crash.
const restartBudget = 2 * time.Second

// freeLoopbackAddr returns a loopback UDP address nobody listens on, so a
// node and its restarted self can share it.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

// restartPair is an old peer a and a node b that the test restarts at a
// fixed address, both in one cluster (the test home's cookie).
type restartPair struct {
	a     *actors.Node
	bAddr string
	bCfg  actors.Config
}

func newRestartPair(t *testing.T, bDataDir string, idle time.Duration) *restartPair {
	t.Helper()
	addr := freeLoopbackAddr(t)
	tcfg := transport.Config{IdleTimeout: idle}
	bCfg := actors.Config{Name: "b@localhost", DataDir: bDataDir, Logger: quietLogger(),
		Transport: transport.Config{ListenAddr: addr, IdleTimeout: idle},
		Dist:      dist.Config{DisableDNS: true, Peers: map[string]string{}},
	}
	a := startNode(t, "a@localhost", actors.Config{Transport: tcfg,
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{"b@localhost": addr}}})
	bCfg.Dist.Peers["a@localhost"] = a.Addr().String()
	return &restartPair{a: a, bAddr: addr, bCfg: bCfg}
}

// startB starts b with the pair's Config (adapter, when set, in place of
// its plain socket on the same address).
func (p *restartPair) startB(t *testing.T, with *adapter.Faulty) *actors.Node {
	t.Helper()
	cfg := p.bCfg
	if with != nil {
		cfg.Transport.Adapter = with
		cfg.Transport.ListenAddr = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	b, err := actors.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start b: %v", err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	spawnEcho(t, b, "echo")
	return b
}

// firstAnswer polls a request from → pid until one is answered and
// returns how long that took; it fails the test past limit.
func firstAnswer(t *testing.T, from *actors.Node, pid *actor.PID, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for time.Since(start) < limit {
		res, err := from.Root().RequestFuture(pid, wrapperspb.String("ping"), 250*time.Millisecond).Result()
		if err == nil {
			if sv, ok := res.(*wrapperspb.StringValue); !ok || sv.Value != "echo:ping" {
				t.Fatalf("answer %v", res)
			}
			return time.Since(start)
		}
		last = err
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s → %v: no answer within %v (last error: %v)", from.Name(), pid, limit, last)
	return 0
}

// TestRestartEphemeralGraceful: b has no DataDir, so each start has a new
// key. After a graceful restart its old peer accepts the new key and is
// answered within restartBudget; the peer saw the old session end
// (peer_shutdown) and a new incarnation come up.
func TestRestartEphemeralGraceful(t *testing.T) {
	p := newRestartPair(t, "", 0)
	b := p.startB(t, nil)
	echo := actor.NewPID(b.Name(), "echo")
	mustEcho(t, p.a, echo, "before")
	mon := monitorProbe(t, p.a, b.Name())
	oldKey, oldInc := b.PublicKey(), b.Incarnation()
	_ = b.Stop()
	if d := mon.nodeDown(t, b.Name()); d.Reason != dist.ReasonPeerShutdown {
		t.Fatalf("NodeDown %+v, want peer_shutdown", d)
	}

	b = p.startB(t, nil)
	if b.PublicKey().Equal(oldKey) {
		t.Fatal("an ephemeral identity kept its key across a restart")
	}
	took := firstAnswer(t, p.a, echo, restartBudget)
	t.Logf("graceful restart, no DataDir: old peer answered %v after Start returned", took.Round(time.Millisecond))
	if up := mon.nodeUp(t, b.Name()); up.Incarnation == oldInc || up.Incarnation != b.Incarnation() {
		t.Fatalf("NodeUp %+v, want the new incarnation %v", up, b.Incarnation())
	}
	if _, pinned, err := p.a.TrustedKey(b.Name()); err != nil || pinned {
		t.Fatalf("a pinned the ephemeral b (%v, %v)", pinned, err)
	}
}

// TestRestartPersistentGraceful: with a DataDir b keeps its key, and its
// old peer (which pinned it) is answered within restartBudget.
func TestRestartPersistentGraceful(t *testing.T) {
	p := newRestartPair(t, t.TempDir(), 0)
	b := p.startB(t, nil)
	echo := actor.NewPID(b.Name(), "echo")
	mustEcho(t, p.a, echo, "before")
	if k, pinned, err := p.a.TrustedKey(b.Name()); err != nil || !pinned || !k.Equal(b.PublicKey()) {
		t.Fatalf("a did not pin the persistent b (%v, %v)", pinned, err)
	}
	key := b.PublicKey()
	_ = b.Stop()
	b = p.startB(t, nil)
	if !b.PublicKey().Equal(key) {
		t.Fatal("restart with the same DataDir changed the key")
	}
	took := firstAnswer(t, p.a, echo, restartBudget)
	t.Logf("graceful restart, DataDir: old peer answered %v after Start returned", took.Round(time.Millisecond))
}

// crashB stops b without a word reaching its peers: its socket drops
// every packet first, as after kill -9.
func crashB(t *testing.T, b *actors.Node, faults *adapter.Faulty) {
	t.Helper()
	faults.SetBlackhole(true)
	_ = b.Stop()
}

// TestRestartAfterCrash: b crashes (nothing reaches a) and comes back at
// the same address with the same Config. A's session to the dead
// incarnation lasts until the idle timeout; a's requests are answered
// within the idle timeout plus restartBudget, with or without a DataDir.
func TestRestartAfterCrash(t *testing.T) {
	const idle = 2 * time.Second
	for _, tc := range []struct {
		name    string
		dataDir bool
	}{{"ephemeral", false}, {"persistent", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dataDir {
				dir = t.TempDir()
			}
			p := newRestartPair(t, dir, idle)
			faults := adapter.NewFaulty(transport.UDPAdapter{Addr: p.bAddr})
			b := p.startB(t, faults)
			echo := actor.NewPID(b.Name(), "echo")
			mustEcho(t, p.a, echo, "before")
			crashed := time.Now()
			crashB(t, b, faults)

			b = p.startB(t, nil)
			took := firstAnswer(t, p.a, echo, idle+restartBudget)
			t.Logf("crash and restart, %s: old peer answered %v after Start returned, %v after the crash (idle timeout %v)",
				tc.name, took.Round(time.Millisecond), time.Since(crashed).Round(time.Millisecond), idle)
		})
	}
}

// TestRestartedNodeDialsFirst: when the restarted b reaches a before a
// noticed the crash, a reports NodeDown{restarted} then NodeUp with the
// new incarnation, and requests both ways work at once.
func TestRestartedNodeDialsFirst(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dataDir bool
	}{{"ephemeral", false}, {"persistent", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dataDir {
				dir = t.TempDir()
			}
			p := newRestartPair(t, dir, 30*time.Second)
			faults := adapter.NewFaulty(transport.UDPAdapter{Addr: p.bAddr})
			b := p.startB(t, faults)
			echo := actor.NewPID(b.Name(), "echo")
			mustEcho(t, p.a, echo, "before")
			mon := monitorProbe(t, p.a, b.Name())
			crashB(t, b, faults)

			b = p.startB(t, nil)
			aEcho := spawnEcho(t, p.a, "echo")
			start := time.Now()
			firstAnswer(t, b, aEcho, restartBudget)
			firstAnswer(t, p.a, echo, restartBudget)
			t.Logf("crash, restarted node dials first, %s: old peer answered %v after Start returned", tc.name, time.Since(start).Round(time.Millisecond))
			d := mon.nodeDown(t, b.Name())
			if d.Reason != dist.ReasonRestarted {
				t.Fatalf("NodeDown %+v, want restarted", d)
			}
			if up := mon.nodeUp(t, b.Name()); up.Incarnation != b.Incarnation() {
				t.Fatalf("NodeUp %+v, want incarnation %v", up, b.Incarnation())
			}
		})
	}
}

// TestRestartWithReplacedKeyRefused: b had a DataDir and comes back with
// another key (its key files replaced). a pinned the old key and refuses
// the new one with an error that says what to do, on both sides; neither
// side logs the refusal more than once per peer and minute.
func TestRestartWithReplacedKeyRefused(t *testing.T) {
	dataDir, aDir := t.TempDir(), t.TempDir()
	p := newRestartPair(t, dataDir, 0)
	aLogs := &lockedLines{}
	_ = p.a.Stop()
	p.a = startNode(t, "a@localhost", actors.Config{Logger: aLogs.logger(), DataDir: aDir,
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{"b@localhost": p.bAddr}}})
	p.bCfg.Dist.Peers["a@localhost"] = p.a.Addr().String()
	b := p.startB(t, nil)
	echo := actor.NewPID(b.Name(), "echo")
	mustEcho(t, p.a, echo, "before")
	_ = b.Stop()

	keyFile := filepath.Join(dataDir, "keys", "node.key")
	for _, f := range []string{keyFile, filepath.Join(dataDir, "keys", "node.pub")} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	bLogs := &lockedLines{}
	p.bCfg.Logger = bLogs.logger()
	b = p.startB(t, nil)

	var err error
	for range 5 {
		err = p.a.Connect(ctxTimeout(t), b.Name())
		if !errors.Is(err, identity.ErrKeyMismatch) {
			t.Fatalf("a → restarted b with a new key: %v, want ErrKeyMismatch", err)
		}
	}
	pinFile := filepath.Join(aDir, "keys", "trusted", "b@localhost.pub")
	for _, want := range []string{"UntrustPeer", "DataDir", pinFile} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("a's error does not say what to do (%q): %v", want, err)
		}
	}
	var berr error
	for range 5 {
		berr = b.Connect(ctxTimeout(t), p.a.Name())
		if !errors.Is(berr, identity.ErrKeyMismatch) || !errors.Is(berr, identity.ErrPeerRejected) {
			t.Fatalf("restarted b → a: %v, want ErrKeyMismatch from the peer", berr)
		}
	}
	for _, want := range []string{"UntrustPeer", keyFile} {
		if !strings.Contains(berr.Error(), want) {
			t.Errorf("b's error does not say what to do (%q): %v", want, berr)
		}
	}
	if n := aLogs.count("identity: refused peer"); n != 1 {
		t.Errorf("a logged %d refusals of b in 10 attempts, want 1:\n%s", n, aLogs)
	}
	if n := bLogs.count("identity: peer refused this node"); n != 1 {
		t.Errorf("b logged %d refusals by a in 10 attempts, want 1:\n%s", n, bLogs)
	}
}

// lockedLines records a node's log as text lines, for counting them.
type lockedLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLines) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// count counts the Warn lines (and above) whose message is msg.
func (l *lockedLines) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.SplitSeq(l.b.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, `msg="`+msg+`"`) {
			n++
		}
	}
	return n
}

func (l *lockedLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRestartWithoutDataDirAfterPinnedRefused: b ran with a DataDir, so a
// pinned its key; b restarted without it presents an ephemeral key. That
// downgrade is a key change: refused on both sides with ErrKeyMismatch
// and advice to restart b with its DataDir, until a untrusts b.
func TestRestartWithoutDataDirAfterPinnedRefused(t *testing.T) {
	p := newRestartPair(t, t.TempDir(), 0)
	b := p.startB(t, nil)
	echo := actor.NewPID(b.Name(), "echo")
	mustEcho(t, p.a, echo, "before")
	_ = b.Stop()

	p.bCfg.DataDir = ""
	b = p.startB(t, nil)
	err := p.a.Connect(ctxTimeout(t), b.Name())
	if !errors.Is(err, identity.ErrKeyMismatch) || !strings.Contains(err.Error(), "ephemeral") ||
		!strings.Contains(err.Error(), "with its DataDir") || !strings.Contains(err.Error(), "UntrustPeer") {
		t.Fatalf("a → b back without its DataDir: %v, want ErrKeyMismatch saying b lost its DataDir", err)
	}
	err = b.Connect(ctxTimeout(t), p.a.Name())
	if !errors.Is(err, identity.ErrKeyMismatch) || !errors.Is(err, identity.ErrPeerRejected) ||
		!strings.Contains(err.Error(), "without a DataDir") {
		t.Fatalf("b without its DataDir → a: %v, want ErrKeyMismatch from a saying b has no DataDir", err)
	}

	if err := p.a.UntrustPeer(b.Name()); err != nil {
		t.Fatal(err)
	}
	firstAnswer(t, p.a, echo, restartBudget)
	if _, pinned, err := p.a.TrustedKey(b.Name()); err != nil || pinned {
		t.Fatalf("a pinned b's ephemeral key after UntrustPeer (%v, %v)", pinned, err)
	}
}
