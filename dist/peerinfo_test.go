package dist_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// TestPeerInfo: the snapshot of a live session on both sides (state,
// role, incarnation, since, path), the traffic counts with CountTraffic
// and none without, and the state after a Disconnect.
func TestPeerInfo(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{Peers: peersOf(b), CountTraffic: true}})
	if got := a.PeerInfo(); len(got) != 0 {
		t.Fatalf("PeerInfo before any traffic: %+v", got)
	}
	before := time.Now()
	pid := spawnEcho(t, b, "echo")
	for range 5 {
		mustEcho(t, a, pid, "x")
	}

	infos := a.PeerInfo()
	if len(infos) != 1 {
		t.Fatalf("a's PeerInfo: %+v, want b only", infos)
	}
	p := infos[0]
	if p.Node != b.Name() || p.State != dist.PeerConnected || p.Role != transport.RoleDialer || p.Incarnation != b.Incarnation() {
		t.Errorf("a sees %s %s role %v incarnation %v; want %s connected, dialer, %v", p.Node, p.State, p.Role, p.Incarnation,
			b.Name(), b.Incarnation())
	}
	if p.Since.Before(before.Add(-time.Second)) || p.Since.After(time.Now()) || p.Path.SmoothedRTT <= 0 || p.Path.RemoteAddr.String() != b.Addr().String() {
		t.Errorf("a's session to b: since %v (test began %v), SRTT %v, remote %v", p.Since, before, p.Path.SmoothedRTT, p.Path.RemoteAddr)
	}
	if !p.Counted || p.MessagesSent < 5 || p.MessagesReceived < 5 || p.BytesSent == 0 || p.BytesReceived == 0 || p.Sessions != 1 {
		t.Errorf("a's counts toward b: %+v, want at least 5 messages each way over 1 session", p)
	}
	bi := b.PeerInfo()
	if len(bi) != 1 || bi[0].Node != a.Name() || bi[0].Role != transport.RoleAcceptor || bi[0].State != dist.PeerConnected {
		t.Errorf("b's PeerInfo: %+v, want a connected, acceptor", bi)
	}
	if bi[0].Counted || bi[0].MessagesReceived != 0 {
		t.Errorf("b keeps no counters (no CountTraffic, no MeterProvider) but reports %+v", bi[0])
	}

	if err := a.Disconnect(context.Background(), b.Name()); err != nil {
		t.Fatal(err)
	}
	for _, p := range a.PeerInfo() {
		if p.State == dist.PeerConnected {
			t.Errorf("after Disconnect a still sees %s connected", p.Node)
		}
	}
}

// TestPeerMigratedEvent: a migration this node runs ends with a
// PeerMigrated on the EventStream, with the old and the new local address;
// a request refused before any migration ran (the accepting side) publishes
// none.
func TestPeerMigratedEvent(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{Peers: peersOf(b)}})
	events := make(chan *dist.PeerMigrated, 4)
	sub := a.System().EventStream.Subscribe(func(ev any) {
		if m, ok := ev.(*dist.PeerMigrated); ok {
			events <- m
		}
	})
	defer a.System().EventStream.Unsubscribe(sub)
	bSub := b.System().EventStream.Subscribe(func(ev any) {
		if m, ok := ev.(*dist.PeerMigrated); ok {
			events <- m
		}
	})
	defer b.System().EventStream.Unsubscribe(bSub)
	mustEcho(t, a, spawnEcho(t, b, "echo"), "x")

	start := time.Now()
	if err := a.MigratePeer(context.Background(), b.Name()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Node != b.Name() || ev.Err != nil || ev.From == ev.To || ev.To != a.PeerInfo()[0].Path.LocalAddr.String() ||
			ev.Start.Before(start) || ev.Took <= 0 {
			t.Errorf("PeerMigrated %+v; want b, no error, from the old local address to %v", ev, a.PeerInfo()[0].Path.LocalAddr)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no PeerMigrated after a migration")
	}

	// A request refused before it starts publishes nothing.
	err := a.MigratePeer(context.Background(), "nobody@localhost")
	if !errors.Is(err, dist.ErrNotConnected) {
		t.Fatalf("migration to a node with no session: %v, want ErrNotConnected", err)
	}
	select {
	case ev := <-events:
		t.Errorf("a refused migration was published: %+v", ev)
	case <-time.After(quietPeriod):
	}
}
