package dist_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

func lookup(l *dist.LearnedAddrs, node string) string {
	addr, _, _ := l.Lookup(node)
	return addr
}

// The replacement rules of the learned source: first-hand news beats
// gossip, a re-advertised address replaces the old one, and gossip
// replaces first-hand news only once a dial to it failed.
func TestLearnedAddrsReplacement(t *testing.T) {
	l := dist.NewLearnedAddrs(10)
	const a = "a@h"
	if !l.Learn(a, "127.0.0.1:1000", dist.AddrAdvertised, a, "hello") {
		t.Fatal("first address not learned")
	}
	if l.Learn(a, "127.0.0.9:9", dist.AddrGossip, "x@h", "Shuffle") || lookup(l, a) != "127.0.0.1:1000" {
		t.Fatalf("gossip replaced the advertised address: %s", lookup(l, a))
	}
	if l.Learn(a, "127.0.0.9:9", dist.AddrObserved, a, "inbound connection") || lookup(l, a) != "127.0.0.1:1000" {
		t.Fatalf("an observed address replaced the advertised one: %s", lookup(l, a))
	}
	if !l.Learn(a, "127.0.0.1:2000", dist.AddrAdvertised, a, "Neighbor") || lookup(l, a) != "127.0.0.1:2000" {
		t.Fatalf("a re-advertised address did not replace the old one: %s", lookup(l, a))
	}
	if _, src, _ := l.Lookup(a); src != "learned from a@h via Neighbor" {
		t.Errorf("source %q", src)
	}
	dist.LearnedDialFailed(l, a, "127.0.0.1:2000")
	if !l.Learn(a, "127.0.0.9:9", dist.AddrGossip, "x@h", "Shuffle") || lookup(l, a) != "127.0.0.9:9" {
		t.Fatalf("gossip did not replace an address that failed: %s", lookup(l, a))
	}
	if _, src, _ := l.Lookup(a); src != "learned from x@h via Shuffle" {
		t.Errorf("source %q", src)
	}

	for _, bad := range []struct{ node, addr string }{
		{a, "0.0.0.0:1"}, {a, "[::]:1"}, {a, "127.0.0.1:0"}, {a, "127.0.0.1"}, {a, ":80"},
		{a, "127.0.0.1:99999"}, {"nohost", "127.0.0.1:1"}, {a, strings.Repeat("x", 400) + ":1"},
	} {
		if l.Learn(bad.node, bad.addr, dist.AddrAdvertised, bad.node, "hello") {
			t.Errorf("learned %s at %q", bad.node, bad.addr)
		}
	}
	if got := lookup(l, a); got != "127.0.0.9:9" {
		t.Errorf("a bad address replaced a good one: %s", got)
	}
}

// The learned source holds at most its bound, dropping the node used
// least recently (a Resolve is a use).
func TestLearnedAddrsBounded(t *testing.T) {
	l := dist.NewLearnedAddrs(2)
	l.Learn("a@h", "127.0.0.1:1", dist.AddrAdvertised, "a@h", "hello")
	l.Learn("b@h", "127.0.0.1:2", dist.AddrAdvertised, "b@h", "hello")
	if _, err := l.Resolve(context.Background(), "a@h"); err != nil {
		t.Fatal(err)
	}
	l.Learn("c@h", "127.0.0.1:3", dist.AddrGossip, "a@h", "Shuffle")
	if l.Len() != 2 || lookup(l, "b@h") != "" || lookup(l, "a@h") == "" || lookup(l, "c@h") == "" {
		t.Fatalf("after a third node: len %d, a %q b %q c %q", l.Len(), lookup(l, "a@h"), lookup(l, "b@h"), lookup(l, "c@h"))
	}
	for i := range 1000 {
		l.Learn("n@h"+string(rune('a'+i%26))+strings.Repeat("x", i/26), "127.0.0.1:9", dist.AddrGossip, "a@h", "Shuffle")
	}
	if l.Len() != 2 {
		t.Fatalf("len %d after a flood of names, want 2", l.Len())
	}
	if _, err := l.Resolve(context.Background(), "nobody@h"); !errors.Is(err, dist.ErrUnknownNode) {
		t.Fatalf("Resolve of an unknown node: %v, want ErrUnknownNode", err)
	}
	var off *dist.LearnedAddrs
	if off.Learn("a@h", "127.0.0.1:1", dist.AddrAdvertised, "a@h", "hello") || off.Len() != 0 {
		t.Fatal("a nil source learned something")
	}
}

// A node with no discovery at all learns a peer's address from the
// peer's authenticated hello, dials it later, and replaces it when the
// peer comes back elsewhere and says so; a failed dial names where the
// address came from.
func TestLearnedAddressFromHello(t *testing.T) {
	quick := dist.Config{DisableDNS: true, ConnectTimeout: 2 * time.Second}
	b := startNode(t, "b@localhost", actors.Config{Dist: quick})
	aDir := t.TempDir() // one identity across a's restarts
	startA := func(listen string) *actors.Node {
		cfg := quick
		cfg.Peers = peersOf(b)
		n := startNode(t, "a@localhost", actors.Config{DataDir: aDir, Dist: cfg,
			Transport: transport.Config{ListenAddr: listen}})
		spawnEcho(t, n, "echo")
		return n
	}

	a := startA("127.0.0.1:0")
	addr1 := a.Addr().String()
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	// b dials a at the address a's hello advertised: a is back there.
	a = startA(addr1)
	eventually(t, waitTimeout, func() bool { return !slices.Contains(b.Nodes(), a.Name()) }, "b sees a's first run end")
	mustEcho(t, b, actor.NewPID(a.Name(), "echo"), "learned")
	a.Stop()
	eventually(t, waitTimeout, func() bool { return !slices.Contains(b.Nodes(), a.Name()) }, "b sees a's second run end")

	// a comes back on another port and connects: the new address
	// replaces the old one.
	a = startA("127.0.0.1:0")
	addr2 := a.Addr().String()
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatal(err)
	}
	a.Stop()
	eventually(t, waitTimeout, func() bool { return !slices.Contains(b.Nodes(), a.Name()) }, "b sees a's third run end")
	err := b.Connect(ctxTimeout(t), a.Name())
	if err == nil {
		t.Fatal("connect to a stopped node succeeded")
	}
	want := addr2 + " (learned from a@localhost via hello)"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), addr1) {
		t.Fatalf("connect error %q, want it to name %q and not the old %s", err, want, addr1)
	}
}
