package proctest_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cask-p2p/cask/internal/proctest"
)

// overlay is the union of the active views the processes last printed:
// an undirected graph (HyParView keeps active views symmetric; either
// side's claim is an edge).
type overlay map[string]map[string]bool

func snapshot(procs map[string]*proctest.Proc) overlay {
	g := overlay{}
	add := func(a, b string) {
		if g[a] == nil {
			g[a] = map[string]bool{}
		}
		g[a][b] = true
	}
	for name, p := range procs {
		add(name, name)
		if v, ok := p.Last("view"); ok {
			for _, peer := range v.Active {
				add(name, peer)
				add(peer, name)
			}
		}
	}
	return g
}

// connectedWithout reports whether the nodes in names form one connected
// component using edges among themselves only (never through without).
func (g overlay) connectedWithout(names []string, without string) bool {
	if len(names) == 0 {
		return true
	}
	seen := map[string]bool{names[0]: true}
	queue := []string{names[0]}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for peer := range g[n] {
			if peer != without && !seen[peer] && slices.Contains(names, peer) {
				seen[peer] = true
				queue = append(queue, peer)
			}
		}
	}
	return len(seen) == len(names)
}

func (g overlay) String() string {
	var lines []string
	for n, peers := range g {
		var ps []string
		for p := range peers {
			if p != n {
				ps = append(ps, p)
			}
		}
		slices.Sort(ps)
		lines = append(lines, fmt.Sprintf("%s: %s", n, strings.Join(ps, " ")))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// pollUntil checks cond every 100 ms until it holds or timeout passes.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Issue 14, deliverable 5: eight processes, each told only the contact's
// name and address (no endpoint directory, DNS off), form an overlay
// whose other seven nodes are connected without the contact, and stay
// connected after kill -9 of the contact. Membership gossip has to carry
// the addresses: nothing else tells a node where the others are.
func TestOverlayThroughOneContact(t *testing.T) {
	bin := proctest.Build(t)
	secret := make([]byte, 16)
	rand.Read(secret)
	t.Setenv("CASK_COOKIE", hex.EncodeToString(secret))

	const shuffle = "300ms"
	contact := "contact@proctest"
	c := proctest.Start(t, bin, "-name", contact, "-listen", "127.0.0.2:0", "-shuffle", shuffle)
	contactAddr := c.MustWaitFor(t, proctest.Kind("started"), 60*time.Second).Addr

	procs := map[string]*proctest.Proc{contact: c}
	var others []string
	for i := 1; i <= 7; i++ {
		name := fmt.Sprintf("n%d@proctest", i)
		others = append(others, name)
		procs[name] = proctest.Start(t, bin, "-name", name, "-listen", fmt.Sprintf("127.0.0.%d:0", 2+i),
			"-contact", contact, "-contact-addr", contactAddr, "-shuffle", shuffle)
	}
	for _, name := range others {
		procs[name].MustWaitFor(t, proctest.Kind("joined"), 60*time.Second)
	}

	// Every one of the seven has a peer other than the contact, and the
	// seven are connected among themselves.
	var g overlay
	ok := pollUntil(60*time.Second, func() bool {
		g = snapshot(procs)
		for _, n := range others {
			if len(g[n]) <= 1 || (len(g[n]) == 2 && g[n][contact]) {
				return false
			}
		}
		return g.connectedWithout(others, contact)
	})
	if !ok {
		t.Fatalf("the seven nodes are not connected without the contact; active views:\n%s", g)
	}
	t.Logf("overlay before the contact dies:\n%s", g)

	c.Kill()
	delete(procs, contact)
	// The contact leaves every active view (idle timeout), then the seven
	// stay connected: check it a few times over a few shuffle periods.
	ok = pollUntil(60*time.Second, func() bool {
		g = snapshot(procs)
		for _, n := range others {
			if g[n][contact] {
				return false
			}
		}
		return g.connectedWithout(others, contact)
	})
	if !ok {
		t.Fatalf("after kill -9 of the contact the seven nodes are not connected; active views:\n%s", g)
	}
	for range 10 {
		time.Sleep(300 * time.Millisecond)
		if g = snapshot(procs); !g.connectedWithout(others, contact) {
			t.Fatalf("the overlay fell apart after the contact died; active views:\n%s", g)
		}
	}
	t.Logf("overlay after the contact died:\n%s", g)
}
