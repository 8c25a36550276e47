package transport

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cask-p2p/cask/transport/adapter"
)

// acceptOne accepts one conn on b in the background.
func acceptOne(t *testing.T, b *Transport) <-chan *Conn {
	t.Helper()
	ctx := testContext(t, 5*time.Second)
	ch := make(chan *Conn, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err != nil {
			c = nil
		}
		ch <- c
	}()
	return ch
}

func startRelay(t *testing.T, target net.Addr) *adapter.Relay {
	t.Helper()
	r, err := adapter.NewRelay("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestDialViaRelayRunsAuthenticatorAndMigratesToAnotherRelay(t *testing.T) {
	authA := &recordingAuth{policy: func(context.Context, *Conn, Role) (Identity, error) { return Identity{Node: "b@host"}, nil }}
	a := startTransport(t, Config{Authenticator: authA})
	b := startTransport(t, Config{})
	relayA := startRelay(t, b.Addr())
	relayB := startRelay(t, b.Addr())

	ctx := testContext(t, 5*time.Second)
	accepted := acceptOne(t, b)
	dialed, err := a.DialVia(ctx, b.Addr(), adapter.Relayed{Via: relayA.Addr()})
	if err != nil {
		t.Fatalf("DialVia: %v", err)
	}
	acc := <-accepted
	if acc == nil {
		t.Fatal("no conn accepted")
	}
	if len(authA.roles) != 1 || authA.roles[0] != RoleDialer || dialed.Identity().Node != "b@host" {
		t.Fatalf("authenticator not run on DialVia: roles %v identity %+v", authA.roles, dialed.Identity())
	}
	if dialed.RemoteAddr().String() != b.Addr().String() {
		t.Fatalf("dialer's remote address %v, want the peer %v", dialed.RemoteAddr(), b.Addr())
	}
	if got := udpAddr(t, dialed.LocalAddr()); got.Port == udpAddr(t, a.Addr()).Port {
		t.Fatal("DialVia used the node's shared socket")
	}
	viaA := acc.RemoteAddr().String()
	if viaA == dialed.LocalAddr().String() {
		t.Fatal("acceptor sees the dialer directly, not relay A")
	}
	wait := echoStreams(t, acc)
	roundTrip(t, dialed, []byte("through relay A"))

	mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := dialed.Migrate(mctx, adapter.Relayed{Via: relayB.Addr()}); err != nil {
		t.Fatalf("Migrate to relay B: %v", err)
	}
	// Relay A is gone: only relay B can carry the traffic now.
	if err := relayA.Close(); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, dialed, []byte("through relay B"))
	if acc.RemoteAddr().String() == viaA {
		t.Fatalf("acceptor still sees relay A's address %v", viaA)
	}
	_ = dialed.CloseWithError(CodeNone, "")
	wait()
}

func TestDialViaErrors(t *testing.T) {
	a := startTransport(t, Config{HandshakeTimeout: 300 * time.Millisecond})
	ctx := testContext(t, 5*time.Second)
	if _, err := a.DialVia(ctx, nil, UDPAdapter{}); err == nil {
		t.Fatal("DialVia with a nil address succeeded")
	}
	// Nobody answers: the handshake times out and the socket is released
	// (the leak check in TestMain would see its goroutine otherwise).
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	start := time.Now()
	_, err = a.DialVia(ctx, silent.LocalAddr(), UDPAdapter{})
	if !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("DialVia to a silent address: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("DialVia took %v to time out", d)
	}

	n, err := New(Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.DialVia(ctx, silent.LocalAddr(), UDPAdapter{}); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("DialVia before Start: %v", err)
	}
	_ = n.Close()
	if _, err := n.DialVia(ctx, silent.LocalAddr(), UDPAdapter{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("DialVia after Close: %v", err)
	}
}

func TestTransportCloseEndsDialViaHandshake(t *testing.T) {
	a := startTransport(t, Config{HandshakeTimeout: 10 * time.Second})
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	done := make(chan error, 1)
	go func() {
		_, err := a.DialVia(context.Background(), silent.LocalAddr(), UDPAdapter{})
		done <- err
	}()
	// Close while the handshake waits for an answer that never comes (or
	// before DialVia started: ErrClosed either way).
	deadline := time.Now().Add(5 * time.Second)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("DialVia during Close: %v", err)
		}
	case <-time.After(time.Until(deadline)):
		t.Fatal("Close did not end the DialVia handshake")
	}
}
