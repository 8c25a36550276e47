package dist_test

import (
	"errors"
	"testing"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
)

// TestMaxPeers: a node at its MaxPeers refuses a new peer's dist hello
// (the dialer sees ErrTooManyPeers) and fails its own connects to new
// peers with ErrTooManyPeers; peers with a session are unaffected, and a
// slot freed by a peer that left is taken by the next.
func TestMaxPeers(t *testing.T) {
	p4 := startNode(t, "p4@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	b := startNode(t, "b@localhost", actors.Config{
		Dist:       dist.Config{DisableDNS: true, MaxPeers: 2, Peers: peersOf(p4)},
		Membership: membership.Config{ActiveSize: 1},
	})
	p1 := startNode(t, "p1@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	p2 := startNode(t, "p2@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	p3 := startNode(t, "p3@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	for _, p := range []*actors.Node{p1, p2} {
		if err := p.Connect(ctxTimeout(t), b.Name()); err != nil {
			t.Fatalf("%s within MaxPeers: %v", p.Name(), err)
		}
	}
	err := p3.Connect(ctxTimeout(t), b.Name())
	if !errors.Is(err, dist.ErrTooManyPeers) || !errors.Is(err, dist.ErrRejected) {
		t.Fatalf("3rd peer: %v, want ErrTooManyPeers and ErrRejected", err)
	}
	if err := b.Connect(ctxTimeout(t), p4.Name()); !errors.Is(err, dist.ErrTooManyPeers) {
		t.Fatalf("outbound connect past MaxPeers: %v, want ErrTooManyPeers", err)
	}
	if err := p1.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("a peer with a session at MaxPeers: %v", err)
	}

	if err := p2.Stop(); err != nil {
		t.Fatal(err)
	}
	var last error
	eventually(t, waitTimeout, func() bool {
		last = p3.Connect(ctxTimeout(t), b.Name())
		return last == nil
	}, "p3 never took the slot p2 left: %v", &last)
}
