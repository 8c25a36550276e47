package adapter_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

var (
	_ transport.SocketAdapter = (*adapter.Faulty)(nil)
	_ transport.SocketAdapter = adapter.Relayed{}
	_ adapter.Opener          = transport.UDPAdapter{}
)

// startTransport starts a transport on loopback, closed when the test ends.
func startTransport(t *testing.T) *transport.Transport {
	t.Helper()
	tr, err := transport.New(transport.Config{
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		IdleTimeout:      2 * time.Second,
		HandshakeTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

func TestRelayForwardsQUIC(t *testing.T) {
	b := startTransport(t)
	relay, err := adapter.NewRelay("127.0.0.1:0", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := relay.Close(); err != nil {
			t.Error(err)
		}
		_ = relay.Close()
	}()
	a := startTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	accepted := make(chan *transport.Conn, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	dialed, err := a.Dial(ctx, relay.Addr())
	if err != nil {
		t.Fatal(err)
	}
	acc := <-accepted
	if acc == nil {
		t.Fatal("no conn accepted")
	}
	if acc.RemoteAddr().String() == dialed.LocalAddr().String() {
		t.Fatal("acceptor sees the dialer directly, not the relay")
	}
	echoed := make(chan struct{})
	go func() {
		defer close(echoed)
		for {
			s, err := acc.AcceptStream(acc.Context())
			if err != nil {
				return
			}
			_, _ = io.Copy(s, s)
			_ = s.Close()
		}
	}()
	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("relay"), 10000)
	go func() {
		_, _ = s.Write(msg)
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through relay: %d bytes, %v", len(got), err)
	}
	_ = dialed.CloseWithError(transport.CodeNone, "")
	<-echoed
}

func TestRelayedNeedsVia(t *testing.T) {
	if _, err := (adapter.Relayed{}).Open(); err == nil {
		t.Fatal("Relayed without Via opened")
	}
}
