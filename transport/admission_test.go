package transport

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// holder is a dialer-side Authenticator that holds every connection it is
// given: it reports the Conn, optionally opens a stream and writes a byte
// (a peer that talks), then waits until the connection ends.
type holder struct {
	talk  bool
	conns chan *Conn
}

func newHolder(talk bool) *holder { return &holder{talk: talk, conns: make(chan *Conn, 16)} }

func (h *holder) Authenticate(ctx context.Context, c *Conn, _ Role) (Identity, error) {
	if h.talk {
		s, err := c.OpenStream(ctx)
		if err != nil {
			return Identity{}, err
		}
		if _, err := s.Write([]byte{1}); err != nil {
			return Identity{}, err
		}
	}
	h.conns <- c
	select {
	case <-c.Context().Done():
		return Identity{}, context.Cause(c.Context())
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
}

// holdDial dials to from `from` in the background; the dial ends when the
// connection does (or at Close). It returns the held Conn.
func holdDial(t *testing.T, wg *sync.WaitGroup, from, to *Transport, h *holder) *Conn {
	t.Helper()
	wg.Add(1)
	failed := make(chan error, 1)
	go func() {
		defer wg.Done()
		if _, err := from.Dial(context.Background(), to.Addr()); err != nil {
			failed <- err
		}
	}()
	select {
	case c := <-h.conns:
		return c
	case err := <-failed:
		t.Fatalf("dial failed before its QUIC handshake completed: %v", err)
		return nil
	case <-time.After(15 * time.Second): // generous: a loaded machine
		t.Fatal("dial did not complete its QUIC handshake")
		return nil
	}
}

// stallingAcceptor is the acceptor's Authenticator in these tests: it
// accepts the peer's first stream when accept is set (so the peer counts
// as talking, not silent) and then waits for release or the deadline.
type stallingAcceptor struct {
	accept  bool
	release chan struct{}
	entered chan *Conn
}

func newStallingAcceptor(accept bool) *stallingAcceptor {
	return &stallingAcceptor{accept: accept, release: make(chan struct{}), entered: make(chan *Conn, 16)}
}

func (a *stallingAcceptor) Authenticate(ctx context.Context, c *Conn, _ Role) (Identity, error) {
	if a.accept {
		if _, err := c.AcceptStream(ctx); err != nil {
			return Identity{}, err
		}
	}
	a.entered <- c
	select {
	case <-a.release:
		return Identity{Node: "ok"}, nil
	case <-ctx.Done():
		return Identity{}, ctx.Err()
	}
}

// waitEntered waits for n connections to enter a's Authenticator.
func (a *stallingAcceptor) waitEntered(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-a.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("connection did not reach the acceptor's Authenticator")
		}
	}
}

func wantTooMany(t *testing.T, what string, c *Conn) {
	t.Helper()
	if cause := waitCause(t, c, 5*time.Second); !errors.Is(cause, ErrTooManyHandshakes) || !errors.Is(cause, ErrPeerClosed) {
		t.Fatalf("%s: cause %v, want ErrTooManyHandshakes from the peer", what, cause)
	}
}

func wantAlive(t *testing.T, what string, c *Conn) {
	t.Helper()
	if err := c.Context().Err(); err != nil {
		t.Fatalf("%s was closed: %v", what, context.Cause(c.Context()))
	}
}

// admissionSetup starts a victim with the given acceptor, pending cap and
// handshake timeouts long enough not to interfere, and two dialers on
// 127.0.0.1 and 127.0.0.2 (two sources).
func admissionSetup(t *testing.T, acceptor Authenticator, maxPending int, dialer Authenticator) (victim, one, two *Transport, wg *sync.WaitGroup) {
	t.Helper()
	wg = &sync.WaitGroup{}
	t.Cleanup(wg.Wait) // runs after the transports are closed
	victim = startTransport(t, Config{
		Authenticator: acceptor, MaxPendingHandshakes: maxPending,
		HandshakeTimeout: 10 * time.Second, FirstStreamTimeout: 10 * time.Second,
	})
	one = startTransport(t, Config{ListenAddr: "127.0.0.1:0", Authenticator: dialer, HandshakeTimeout: 10 * time.Second})
	two = startTransport(t, Config{ListenAddr: "127.0.0.2:0", Authenticator: dialer, HandshakeTimeout: 10 * time.Second})
	return victim, one, two, wg
}

// TestPendingFullEvictsOldestSilent: with the pending set full of silent
// connections, a newcomer (from any source) takes the place of the oldest
// silent one from the source with the most pending.
func TestPendingFullEvictsOldestSilent(t *testing.T) {
	acc := newStallingAcceptor(false)
	h := newHolder(false)
	victim, one, two, wg := admissionSetup(t, acc, 3, h)

	first := holdDial(t, wg, one, victim, h)
	acc.waitEntered(t, 1)
	other := holdDial(t, wg, two, victim, h)
	acc.waitEntered(t, 1)
	second := holdDial(t, wg, one, victim, h)
	acc.waitEntered(t, 1)
	// Full. A newcomer from 127.0.0.2 evicts 127.0.0.1's oldest: that
	// source has the most pending, though other is older than second.
	holdDial(t, wg, two, victim, h)
	wantTooMany(t, "oldest silent conn of the busiest source", first)
	acc.waitEntered(t, 1) // the newcomer was admitted
	wantAlive(t, "other source's conn", other)
	wantAlive(t, "younger conn", second)
	// Now each source has two: the oldest overall (other) goes next.
	holdDial(t, wg, one, victim, h)
	wantTooMany(t, "oldest silent conn", other)
	wantAlive(t, "younger conn", second)
	close(acc.release)
}

// TestPendingFullOfTalkingPeers: peers that opened their first stream are
// evicted only in favour of a newcomer from a source with fewer pending
// connections; a newcomer from the busiest source is refused.
func TestPendingFullOfTalkingPeers(t *testing.T) {
	acc := newStallingAcceptor(true)
	h := newHolder(true)
	victim, one, two, wg := admissionSetup(t, acc, 2, h)

	first := holdDial(t, wg, one, victim, h)
	acc.waitEntered(t, 1)
	second := holdDial(t, wg, one, victim, h)
	acc.waitEntered(t, 1)
	// Full of talking peers from 127.0.0.1: another from there is refused.
	refused := holdDial(t, wg, one, victim, h)
	wantTooMany(t, "newcomer from the busiest source", refused)
	wantAlive(t, "first", first)
	wantAlive(t, "second", second)
	// One from 127.0.0.2 takes the place of 127.0.0.1's oldest.
	holdDial(t, wg, two, victim, h)
	wantTooMany(t, "oldest talking conn of the busiest source", first)
	acc.waitEntered(t, 1)
	wantAlive(t, "second", second)
	close(acc.release)
}

// TestFirstStreamTimeout: a peer that opens no stream within
// FirstStreamTimeout is dropped; one that talks is not.
func TestFirstStreamTimeout(t *testing.T) {
	const first = 300 * time.Millisecond
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	acc := newStallingAcceptor(true)
	victim := startTransport(t, Config{Authenticator: acc, HandshakeTimeout: 10 * time.Second, FirstStreamTimeout: first})
	silent, talking := newHolder(false), newHolder(true)
	a := startTransport(t, Config{Authenticator: silent, HandshakeTimeout: 10 * time.Second})
	b := startTransport(t, Config{Authenticator: talking, HandshakeTimeout: 10 * time.Second})

	start := time.Now()
	quiet := holdDial(t, &wg, a, victim, silent)
	talker := holdDial(t, &wg, b, victim, talking)
	cause := waitCause(t, quiet, 5*time.Second)
	var ce *CloseError
	if !errors.As(cause, &ce) || ce.Code != CodeHandshakeFailed {
		t.Fatalf("silent peer: cause %v, want CodeHandshakeFailed", cause)
	}
	if el := time.Since(start); el < first || el > 5*first {
		t.Fatalf("silent peer dropped after %v, want about %v", el, first)
	}
	acc.waitEntered(t, 1)
	time.Sleep(first) // past the first-stream deadline
	wantAlive(t, "talking peer", talker)
	close(acc.release)
}

// TestAcceptedConnPendingUntilAdmitted: Accept does not end admission; an
// accepted connection counts against MaxPendingHandshakes until Admitted.
func TestAcceptedConnPendingUntilAdmitted(t *testing.T) {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	victim := startTransport(t, Config{MaxPendingHandshakes: 1})
	h := newHolder(true)
	a := startTransport(t, Config{Authenticator: h, HandshakeTimeout: 10 * time.Second})
	ctx := testContext(t, 5*time.Second)

	held := holdDial(t, &wg, a, victim, h)
	accepted, err := victim.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := accepted.AcceptStream(ctx); err != nil { // it talks
		t.Fatal(err)
	}
	// Still pending: a second connection from the same source is refused.
	refused := holdDial(t, &wg, a, victim, h)
	wantTooMany(t, "second connection before Admitted", refused)
	wantAlive(t, "accepted connection", held)

	accepted.Admitted()
	accepted.Admitted() // a second call does nothing
	third := holdDial(t, &wg, a, victim, h)
	if _, err := victim.Accept(ctx); err != nil {
		t.Fatalf("Accept after Admitted: %v", err)
	}
	wantAlive(t, "connection after Admitted", third)
	wantAlive(t, "admitted connection", held)
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.7"), Port: 1}, "127.0.0.7"},
		{&net.UDPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 1}, "10.1.2.3"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}, "2001:db8:1:2::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::1"), Port: 9}, "2001:db8:1:2::/64"},
	} {
		if got := sourceOf(tc.addr); got != tc.want {
			t.Errorf("sourceOf(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
