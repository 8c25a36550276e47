package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLogger discards logs unless -v is given.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// startTransport starts a transport with short timeouts; it is closed at
// the end of the test.
func startTransport(t *testing.T, cfg Config) *Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 2 * time.Second
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := tr.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect dials b from a and returns both ends.
func connect(t *testing.T, a, b *Transport) (dialed, accepted *Conn) {
	t.Helper()
	ctx := testContext(t, 5*time.Second)
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := b.Accept(ctx)
		ch <- result{c, err}
	}()
	dialed, err := a.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	return dialed, r.c
}

// echoStreams answers every bidi stream on c by copying it back, until c
// ends. The returned func waits for it.
func echoStreams(t *testing.T, c *Conn) (wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			s, err := c.AcceptStream(c.Context())
			if err != nil {
				return
			}
			_, _ = io.Copy(s, s)
			_ = s.Close()
		}
	}()
	return func() { <-done }
}

// waitCause waits for c's context and returns its cause.
func waitCause(t *testing.T, c *Conn, within time.Duration) error {
	t.Helper()
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-time.After(within):
		t.Fatalf("conn still alive after %v", within)
		return nil
	}
}

// udpAddr is a helper for address assertions.
func udpAddr(t *testing.T, a net.Addr) *net.UDPAddr {
	t.Helper()
	u, ok := a.(*net.UDPAddr)
	if !ok {
		t.Fatalf("address %v is %T, want *net.UDPAddr", a, a)
	}
	return u
}

var errTest = errors.New("test: rejected")
