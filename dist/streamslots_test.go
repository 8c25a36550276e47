package dist_test

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// slotLimit is MaxUserStreams in the slot tests.
const slotLimit = 4

// heldStreams collects the streams an acceptor was handed, untouched.
type heldStreams struct {
	mu  sync.Mutex
	got []*dist.Stream
}

func (h *heldStreams) take(s *dist.Stream) {
	h.mu.Lock()
	h.got = append(h.got, s)
	h.mu.Unlock()
}

func (h *heldStreams) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

func (h *heldStreams) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.got {
		s.Close()
	}
}

// slotPair is two connected nodes, each holding every stream the other
// opens under the tag "hold" without reading it.
func slotPair(t *testing.T) (nodes []*actors.Node, held []*heldStreams) {
	t.Helper()
	nodes = mesh(t, 2, actors.Config{Dist: dist.Config{MaxUserStreams: slotLimit}})
	held = []*heldStreams{{}, {}}
	for i, n := range nodes {
		acceptorOf(t, n, "hold", held[i].take)
	}
	t.Cleanup(func() { held[0].closeAll(); held[1].closeAll() })
	return nodes, held
}

// openAll opens count streams from → to and fails the test on an error.
func openAll(t *testing.T, from, to *actors.Node, count int) []*dist.Stream {
	t.Helper()
	out := make([]*dist.Stream, count)
	for i := range out {
		s, err := from.OpenStream(ctx10(t), to.Name(), "hold")
		if err != nil {
			t.Fatalf("stream %d %s → %s: %v", i, from.Name(), to.Name(), err)
		}
		t.Cleanup(func() { s.Close() })
		out[i] = s
	}
	return out
}

// TestStreamSlotsPerDirection: the cap holds per direction, so both
// nodes open the maximum toward each other at the same time, and one more
// in either direction is refused with ErrStreamLimit.
func TestStreamSlotsPerDirection(t *testing.T) {
	nodes, held := slotPair(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		from, to := nodes[i], nodes[1-i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range slotLimit {
				s, err := from.OpenStream(ctx10(t), to.Name(), "hold")
				if err != nil {
					errs[i] = err
					return
				}
				t.Cleanup(func() { s.Close() })
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s opening %d streams while the peer opens %d: %v", nodes[i].Name(), slotLimit, slotLimit, err)
		}
	}
	eventually(t, waitTimeout, func() bool { return held[0].count() == slotLimit && held[1].count() == slotLimit },
		"both acceptors hold %d streams", slotLimit)
	for i := range 2 {
		if _, err := nodes[i].OpenStream(ctx10(t), nodes[1-i].Name(), "hold"); !errors.Is(err, dist.ErrStreamLimit) {
			t.Errorf("stream %d+1 %s → %s: err = %v, want %v", slotLimit, nodes[i].Name(), nodes[1-i].Name(), err, dist.ErrStreamLimit)
		}
	}
}

// TestStreamSlotFreedWhenPeerSawEnd: the opener's Close frees the slot
// once the acceptor has seen the end, here by reading to io.EOF without
// closing; both directions.
func TestStreamSlotFreedWhenPeerSawEnd(t *testing.T) {
	nodes, held := slotPair(t)
	for i := range 2 {
		from, to, acc := nodes[i], nodes[1-i], held[1-i]
		name := from.Name() + " → " + to.Name()
		streams := openAll(t, from, to, slotLimit)
		eventually(t, waitTimeout, func() bool { return acc.count() == slotLimit }, "%s: acceptor holds %d", name, slotLimit)

		// Streams are accepted concurrently, so the acceptor's order need
		// not be the opener's: each stream says which one it is first.
		for j, s := range streams {
			if _, err := s.Write([]byte{byte(j)}); err != nil {
				t.Fatal(err)
			}
		}
		acc.mu.Lock()
		var first *dist.Stream
		for k, s := range acc.got {
			var id [1]byte
			s.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, err := io.ReadFull(s, id[:]); err != nil {
				acc.mu.Unlock()
				t.Fatalf("%s: acceptor reading stream id: %v", name, err)
			}
			if id[0] == 0 {
				first = s
				acc.got = append(acc.got[:k:k], acc.got[k+1:]...)
				break
			}
		}
		acc.mu.Unlock()
		if first == nil {
			t.Fatalf("%s: the acceptor does not hold the opener's first stream", name)
		}
		if _, err := streams[0].Write([]byte("last words")); err != nil {
			t.Fatal(err)
		}
		if err := streams[0].Close(); err != nil {
			t.Fatal(err)
		}
		// The acceptor has not read to the end: the slot is still taken on
		// its side.
		if _, err := from.OpenStream(ctx10(t), to.Name(), "hold"); !errors.Is(err, dist.ErrStreamLimit) {
			t.Fatalf("%s: open before the acceptor saw the end: err = %v, want %v", name, err, dist.ErrStreamLimit)
		}
		first.SetReadDeadline(time.Now().Add(waitTimeout))
		if b, err := io.ReadAll(first); err != nil || string(b) != "last words" {
			t.Fatalf("%s: acceptor read %q, %v", name, b, err)
		}
		// Seen the end: one more stream fits, and then the cap holds.
		s, err := from.OpenStream(ctx10(t), to.Name(), "hold")
		if err != nil {
			t.Fatalf("%s: open after the acceptor read to the end: %v", name, err)
		}
		t.Cleanup(func() { s.Close(); first.Close() })
		if _, err := from.OpenStream(ctx10(t), to.Name(), "hold"); !errors.Is(err, dist.ErrStreamLimit) {
			t.Fatalf("%s: open over the cap: err = %v, want %v", name, err, dist.ErrStreamLimit)
		}
	}
}

// TestStreamSlotFreedByReset: an acceptor that closes a stream without
// reading resets it for the opener, whose slot is freed without its own
// Close; both directions.
func TestStreamSlotFreedByReset(t *testing.T) {
	nodes, held := slotPair(t)
	for i := range 2 {
		from, to, acc := nodes[i], nodes[1-i], held[1-i]
		name := from.Name() + " → " + to.Name()
		openAll(t, from, to, slotLimit)
		eventually(t, waitTimeout, func() bool { return acc.count() == slotLimit }, "%s: acceptor holds %d", name, slotLimit)
		if _, err := from.OpenStream(ctx10(t), to.Name(), "hold"); !errors.Is(err, dist.ErrStreamLimit) {
			t.Fatalf("%s: open over the cap: err = %v, want %v", name, err, dist.ErrStreamLimit)
		}
		acc.mu.Lock()
		first := acc.got[0]
		acc.got = acc.got[1:]
		acc.mu.Unlock()
		first.Close() // STOP_SENDING: the opener's writes are reset
		var s *dist.Stream
		eventually(t, waitTimeout, func() bool {
			var err error
			s, err = from.OpenStream(ctx10(t), to.Name(), "hold")
			if err != nil && !errors.Is(err, dist.ErrStreamLimit) {
				t.Fatalf("%s: open after the reset: %v", name, err)
			}
			return err == nil
		}, "%s: a slot after the acceptor reset a stream", name)
		t.Cleanup(func() { s.Close() })
	}
}
