package identity

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cask-p2p/cask/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startTransport starts a loopback transport with short timeouts; it is
// closed at the end of the test.
func startTransport(t *testing.T, cfg transport.Config) *transport.Transport {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 2 * time.Second
	}
	tr, err := transport.New(cfg)
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

// echoStreams answers every bidi stream on c by copying it back, until c
// ends. The returned func waits for it.
func echoStreams(t *testing.T, c *transport.Conn) (wait func()) {
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
func waitCause(t *testing.T, c *transport.Conn, within time.Duration) error {
	t.Helper()
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-time.After(within):
		t.Fatalf("conn still alive after %v", within)
		return nil
	}
}
