package dist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// closedConn returns a dialed connection that has already ended.
func closedConn(t *testing.T) *transport.Conn {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var trs []*transport.Transport
	for range 2 {
		tr, err := transport.New(transport.Config{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		trs = append(trs, tr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _, _ = trs[1].Accept(ctx) }()
	c, err := trs[0].Dial(ctx, trs[1].Addr())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWithError(transport.CodeNone, "")
	<-c.Context().Done()
	return c
}

// A controller still holding a session whose QUIC connection is gone (the
// sessionClosed report is on its way) answers ErrNoConn; with no session,
// ErrNotConnected.
func TestMigrationCheckReportsNoConn(t *testing.T) {
	conn := closedConn(t)
	m := &Manager{}
	c := &controller{m: m, peer: "b@localhost"}
	if err := c.migrationCheck(); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("no session: %v", err)
	}
	allCaps := uint64(1) << caskpb.Capability_CAPABILITY_MIGRATION
	c.state, c.sess = stateConnected, &session{conn: conn, role: conn.Role(), caps: allCaps}
	if err := c.migrationCheck(); !errors.Is(err, ErrNoConn) || !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("connection gone: %v", err)
	}
	if res := c.pathStats(); !errors.Is(res.Err, ErrNoConn) {
		t.Fatalf("path stats with the connection gone: %v", res.Err)
	}
	m.stopping.Store(true)
	if err := c.migrationCheck(); !errors.Is(err, ErrStopped) {
		t.Fatalf("stopping: %v", err)
	}
}

func TestMigrationErrorMapping(t *testing.T) {
	// Each error is translated once, where it crosses into dist: it
	// matches dist's sentinel and transport's, and reads once.
	for _, tc := range []struct {
		in      error
		stopped bool
		want    error
		msg     string // of peerErr("migrate", "b@h", ...)
	}{
		{nil, false, nil, ""},
		{fmt.Errorf("%w: path from 127.0.0.1:4000 not validated", transport.ErrMigrationTimeout), false, ErrTimeout,
			"dist: migrate b@h: migration timed out: path from 127.0.0.1:4000 not validated within 5s"},
		{transport.ErrPeerDisableMigration, false, ErrPeerDisableMigration,
			"dist: migrate b@h: peer disabled migration"},
		{fmt.Errorf("%w: the connection was accepted, only the dialer can migrate", transport.ErrMigrationNotAllowed), false, ErrMigrationNotAllowed,
			"dist: migrate b@h: migration not allowed on this side: the connection was accepted, only the dialer can migrate"},
		{fmt.Errorf("%w: no packet", transport.ErrIdleTimeout), false, ErrNoConn,
			"dist: migrate b@h: no connection: idle timeout: no packet"},
		{&transport.CloseError{Code: transport.CodeShutdown, Remote: true}, false, ErrNoConn, ""},
		{transport.ErrClosed, false, ErrNoConn, "dist: migrate b@h: no connection: closed"},
		{context.Canceled, true, ErrStopped, "dist: migrate b@h: stopped: context canceled"},
	} {
		got := migrationError(tc.in, tc.stopped, 5*time.Second)
		if tc.want == nil {
			if got != nil {
				t.Errorf("migrationError(nil) = %v", got)
			}
			continue
		}
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
			t.Errorf("migrationError(%v) = %v, want %v wrapping the original", tc.in, got, tc.want)
		}
		pe := peerErr("migrate", "b@h", got)
		if tc.msg != "" && pe.Error() != tc.msg {
			t.Errorf("message of %v:\n got %q\nwant %q", tc.in, pe.Error(), tc.msg)
		}
		if n := strings.Count(pe.Error(), "dist: ") + strings.Count(pe.Error(), "transport: "); n != 1 {
			t.Errorf("%q names a package %d times", pe.Error(), n)
		}
	}
	if got := withPort("127.0.0.2"); got != "127.0.0.2:0" {
		t.Errorf("withPort = %q", got)
	}
	if got := withPort("::1"); got != "[::1]:0" {
		t.Errorf("withPort = %q", got)
	}
	if got := withPort("10.0.0.1:4000"); got != "10.0.0.1:4000" {
		t.Errorf("withPort = %q", got)
	}
}
