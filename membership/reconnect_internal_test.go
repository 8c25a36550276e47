package membership

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cask-p2p/cask/membership/hyparview"
)

// reconnectActor is a membership actor with only what the reconnect
// choice reads: config, views, registry and the lost list.
func reconnectActor(t *testing.T, now *time.Time, contacts ...string) *membershipActor {
	t.Helper()
	cfg := Config{ContactNodes: contacts, ReconnectPeriod: time.Second, Now: func() time.Time { return *now }}.WithDefaults()
	rng := rand.New(rand.NewPCG(1, 2))
	st, err := hyparview.New(cfg.stateConfig("self@h", rng))
	if err != nil {
		t.Fatal(err)
	}
	return &membershipActor{
		cfg: cfg, self: "self@h", state: st, rng: rng, log: slog.New(slog.DiscardHandler),
		reg:  newRegistry("self@h", 1),
		live: map[string]bool{}, opening: map[string]bool{}, announced: map[string]bool{}, awaiting: map[string]bool{},
		lost: map[string]time.Time{},
	}
}

// TestReconnect_Candidates: only lost nodes with no news through the
// overlay (group state down, suspected or unknown) and contacts heard of
// and now down or suspected, neither an active peer, are tried; lost
// nodes expire after TombstoneTTL.
func TestReconnect_Candidates(t *testing.T) {
	now := rt0
	a := reconnectActor(t, &now, "fresh-contact@h", "unknown-contact@h", "down-contact@h", "self@h")
	up := func() *nodeState {
		return &nodeState{version: 1, groups: map[string][]string{}, names: map[string]nameClaim{}}
	}
	a.reg.states["fresh@h"] = up()
	a.reg.states["fresh-contact@h"] = up()
	a.reg.states["down@h"] = &nodeState{version: 1, down: true, downAt: now}
	a.reg.states["down-contact@h"] = &nodeState{version: 1, down: true, downAt: now}
	a.reg.states["suspected@h"] = up()
	a.reg.states["suspected@h"].suspected = true
	a.state.Join("active@h", now) // in the active view, not announced yet
	a.announced["announced@h"] = true
	a.opening["opening@h"] = true

	a.lose("old@h")
	now = now.Add(a.cfg.TombstoneTTL / 2)
	for _, n := range []string{"fresh@h", "down@h", "suspected@h", "active@h", "announced@h", "opening@h", "never-heard@h", "self@h"} {
		a.lose(n)
	}
	now = now.Add(a.cfg.TombstoneTTL/2 + time.Second) // old@h is past TombstoneTTL
	got := a.reconnectCandidates(now)
	want := []string{"down-contact@h", "down@h", "never-heard@h", "suspected@h"}
	if !slices.Equal(got, want) {
		t.Fatalf("candidates %v, want %v", got, want)
	}
	if _, ok := a.lost["old@h"]; ok {
		t.Fatalf("a lost node past TombstoneTTL is still remembered")
	}
	if _, ok := a.lost["self@h"]; ok {
		t.Fatalf("the node remembers itself as lost")
	}
	// A lost node heard of again (its state up) is no longer tried.
	a.reg.states["down@h"] = up()
	if got := a.reconnectCandidates(now); slices.Contains(got, "down@h") {
		t.Fatalf("a node with news is still a candidate: %v", got)
	}
}

// TestReconnect_LostIsBounded: at most MaxLostNodes are remembered, the
// oldest go first; off (negative ReconnectPeriod) remembers none.
func TestReconnect_LostIsBounded(t *testing.T) {
	now := rt0
	a := reconnectActor(t, &now)
	for i := range MaxLostNodes + 6 {
		a.lose(fmt.Sprintf("n%03d@h", i))
		now = now.Add(time.Second)
	}
	if len(a.lost) != MaxLostNodes {
		t.Fatalf("%d lost nodes remembered, want %d", len(a.lost), MaxLostNodes)
	}
	for i := range 6 {
		if _, ok := a.lost[fmt.Sprintf("n%03d@h", i)]; ok {
			t.Fatalf("n%03d@h, among the oldest, is still remembered", i)
		}
	}
	if _, ok := a.lost[fmt.Sprintf("n%03d@h", MaxLostNodes+5)]; !ok {
		t.Fatalf("the newest lost node is not remembered")
	}
	a.cfg.ReconnectPeriod = -1
	clear(a.lost)
	a.lose("x@h")
	if len(a.lost) != 0 {
		t.Fatalf("reconnect off, yet a lost node is remembered")
	}
}
