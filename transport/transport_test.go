package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-p2p/cask/transport/adapter"
	"github.com/quic-go/quic-go"
)

func TestConfigDefaultsAndValidation(t *testing.T) {
	tr, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := tr.Config()
	if cfg.IdleTimeout != DefaultIdleTimeout || cfg.KeepAlivePeriod != DefaultKeepAlivePeriod ||
		cfg.HandshakeTimeout != DefaultHandshakeTimeout || cfg.MaxPendingHandshakes != DefaultMaxPendingHandshakes ||
		cfg.MaxIncomingStreams != DefaultMaxIncomingStreams || cfg.MaxIncomingUniStreams != DefaultMaxIncomingUniStreams ||
		cfg.ListenAddr != DefaultListenAddr || cfg.Adapter == nil || cfg.Logger == nil {
		t.Fatalf("defaults not filled: %+v", cfg)
	}
	if tr.Addr() != nil {
		t.Fatal("Addr before Start must be nil")
	}
	if _, err := tr.Accept(context.Background()); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Accept before Start: %v", err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	// A short IdleTimeout pulls the KeepAlivePeriod default below it, to a third.
	tr, err = New(Config{IdleTimeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Config().KeepAlivePeriod; got != 200*time.Millisecond {
		t.Fatalf("KeepAlivePeriod = %v", got)
	}

	for _, bad := range []Config{
		{IdleTimeout: time.Second, KeepAlivePeriod: 2 * time.Second},
		{IdleTimeout: -1},
		{MaxPendingHandshakes: -1},
		{MaxIncomingStreams: -1},
		{HandshakeTimeout: -time.Second},
	} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", bad)
		}
	}
}

func TestDialAcceptEcho(t *testing.T) {
	a := startTransport(t, Config{})
	b := startTransport(t, Config{})
	dialed, accepted := connect(t, a, b)
	if dialed.Role() != RoleDialer || accepted.Role() != RoleAcceptor {
		t.Fatalf("roles: %v %v", dialed.Role(), accepted.Role())
	}
	if dialed.RemoteAddr().String() != b.Addr().String() {
		t.Fatalf("dialed remote %v, want %v", dialed.RemoteAddr(), b.Addr())
	}
	if accepted.RemoteAddr().String() != dialed.LocalAddr().String() {
		t.Fatalf("accepted remote %v, dialed local %v", accepted.RemoteAddr(), dialed.LocalAddr())
	}
	wait := echoStreams(t, accepted)
	ctx := testContext(t, 5*time.Second)

	// Bidi echo, with a frame.
	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 256<<10)
	_, _ = rand.Read(payload)
	go func() {
		_, _ = s.Write(AppendFrame(nil, payload))
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, AppendFrame(nil, payload)) {
		t.Fatalf("echo mismatch: %d bytes", len(got))
	}

	// Uni streams both ways.
	for _, pair := range [][2]*Conn{{dialed, accepted}, {accepted, dialed}} {
		from, to := pair[0], pair[1]
		us, err := from.OpenUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte("hello from " + from.Role().String())
		if _, err := us.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := us.Close(); err != nil {
			t.Fatal(err)
		}
		rs, err := to.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("uni got %q want %q", got, msg)
		}
	}

	st := dialed.Stats()
	if st.BytesSent == 0 || st.SmoothedRTT == 0 || st.LocalAddr == nil || st.RemoteAddr == nil || st.Migrations != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// Both sides derive the same exporter value.
	ea, err := dialed.ExportKeyingMaterial("cask test", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := accepted.ExportKeyingMaterial("cask test", nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ea, eb) {
		t.Fatal("exporter values differ")
	}

	// Peer close reaches the other side as ErrPeerClosed with code and reason.
	if err := dialed.CloseWithError(CodeDuplicate, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := dialed.CloseWithError(CodeDuplicate, "bye"); err != nil {
		t.Fatal("second CloseWithError:", err)
	}
	cause := waitCause(t, accepted, 5*time.Second)
	var ce *CloseError
	if !errors.Is(cause, ErrPeerClosed) || !errors.As(cause, &ce) || ce.Code != CodeDuplicate || ce.Reason != "bye" || !ce.Remote {
		t.Fatalf("acceptor cause: %v", cause)
	}
	if cause := waitCause(t, dialed, time.Second); !errors.Is(cause, ErrClosed) {
		t.Fatalf("dialer cause: %v", cause)
	}
	if _, err := dialed.OpenStream(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpenStream on closed conn: %v", err)
	}
	wait()
}

func TestStreamResetAndDeadline(t *testing.T) {
	a := startTransport(t, Config{})
	b := startTransport(t, Config{})
	dialed, accepted := connect(t, a, b)
	ctx := testContext(t, 5*time.Second)

	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	peer, err := accepted.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.StreamID() != peer.StreamID() {
		t.Fatalf("stream IDs %d vs %d", s.StreamID(), peer.StreamID())
	}
	s.CancelWrite(CodeProtocolViolation)
	buf := make([]byte, 16)
	var rerr error
	for range 10 {
		if _, rerr = peer.Read(buf); rerr != nil {
			break
		}
	}
	var se *StreamError
	if !errors.Is(rerr, ErrStreamReset) || !errors.As(rerr, &se) || se.Code != CodeProtocolViolation || !se.Remote {
		t.Fatalf("read after reset: %v", rerr)
	}

	// Deadlines surface as os.ErrDeadlineExceeded.
	s2, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
}

func TestTLSPersistedInDataDir(t *testing.T) {
	dir := t.TempDir()
	a := startTransport(t, Config{DataDir: dir})
	first := a.cert.Certificate[0]
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, tlsDirName, keyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != keyFileMode {
		t.Fatalf("key mode %o, want %o", mode, keyFileMode)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, tlsDirName, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Fatalf("temp files left: %v", leftovers)
	}

	b := startTransport(t, Config{DataDir: dir})
	if !bytes.Equal(b.cert.Certificate[0], first) {
		t.Fatal("certificate changed across restarts")
	}
	// The peer sees the persisted certificate.
	c := startTransport(t, Config{})
	dialed, _ := connect(t, c, b)
	peerCerts := dialed.qc.ConnectionState().TLS.PeerCertificates
	if len(peerCerts) == 0 || !bytes.Equal(peerCerts[0].Raw, first) {
		t.Fatal("peer did not present the persisted certificate")
	}

	// In-memory transports get fresh certificates.
	d := startTransport(t, Config{})
	if bytes.Equal(d.cert.Certificate[0], c.cert.Certificate[0]) {
		t.Fatal("two in-memory transports share a certificate")
	}

	// Half a pair is refused, not silently replaced.
	half := t.TempDir()
	if err := os.MkdirAll(filepath.Join(half, tlsDirName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(half, tlsDirName, certFileName), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{DataDir: half, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err == nil {
		t.Fatal("Start accepted half a TLS pair")
	}
	_ = e.Close()
}

func TestWrongALPNRefused(t *testing.T) {
	b := startTransport(t, Config{})
	ctx := testContext(t, 5*time.Second)
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"not-cask"}, ServerName: serverName}
	_, err := quic.DialAddr(ctx, b.Addr().String(), tlsConf, &quic.Config{HandshakeIdleTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("dial with wrong ALPN succeeded")
	}
	if !errors.Is(convertErr(err), ErrHandshake) {
		t.Fatalf("wrong ALPN error converts to %v", convertErr(err))
	}
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := b.Accept(actx); err == nil {
		t.Fatalf("Accept yielded %v", c.RemoteAddr())
	}
}

func TestIdleTimeoutBlackhole(t *testing.T) {
	const idle = 600 * time.Millisecond
	fa := adapter.NewFaulty(UDPAdapter{})
	a := startTransport(t, Config{Adapter: fa, IdleTimeout: idle, KeepAlivePeriod: 150 * time.Millisecond})
	b := startTransport(t, Config{IdleTimeout: idle, KeepAlivePeriod: 150 * time.Millisecond})
	dialed, accepted := connect(t, a, b)

	fa.SetBlackhole(true)
	if !fa.Faults().Blackhole {
		t.Fatal("Faults() does not report the blackhole")
	}
	start := time.Now()
	for _, c := range []*Conn{accepted, dialed} {
		cause := waitCause(t, c, 4*idle)
		if !errors.Is(cause, ErrIdleTimeout) {
			t.Fatalf("%v cause %v, want ErrIdleTimeout", c.Role(), cause)
		}
	}
	if el := time.Since(start); el > 3*idle {
		t.Fatalf("dead peer noticed after %v", el)
	}
	ctx := testContext(t, time.Second)
	if _, err := dialed.OpenStream(ctx); !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("OpenStream after idle timeout: %v", err)
	}
}

func TestLossAndDelayStillDeliver(t *testing.T) {
	fa := adapter.NewFaulty(nil)
	fa.SetSeed(42)
	a := startTransport(t, Config{Adapter: fa})
	fb := adapter.NewFaulty(nil)
	b := startTransport(t, Config{Adapter: fb})
	dialed, accepted := connect(t, a, b)
	wait := echoStreams(t, accepted)

	fa.SetLoss(0.1)
	fa.SetDelay(20 * time.Millisecond)
	fb.SetLoss(0.1)
	if f := fa.Faults(); f.Loss != 0.1 || f.Delay != 20*time.Millisecond {
		t.Fatalf("faults %+v", f)
	}
	ctx := testContext(t, 20*time.Second)
	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 512<<10)
	_, _ = rand.Read(payload)
	go func() {
		_, _ = s.Write(payload)
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload corrupted under loss and delay")
	}
	if st := dialed.Stats(); st.SmoothedRTT < 20*time.Millisecond {
		t.Fatalf("SRTT %v does not reflect the 20ms delay", st.SmoothedRTT)
	}
	_ = dialed.CloseWithError(CodeNone, "")
	wait()
}

// recordingAuth records the roles it was called with and applies a policy.
type recordingAuth struct {
	mu     sync.Mutex
	roles  []Role
	policy func(ctx context.Context, c *Conn, role Role) (Identity, error)
}

func (a *recordingAuth) Authenticate(ctx context.Context, c *Conn, role Role) (Identity, error) {
	a.mu.Lock()
	a.roles = append(a.roles, role)
	a.mu.Unlock()
	if role != c.Role() {
		return Identity{}, errors.New("role argument differs from Conn.Role")
	}
	return a.policy(ctx, c, role)
}

func TestAuthenticatorRolesAndIdentity(t *testing.T) {
	// A tiny exchange over a stream: each side sends its name.
	exchange := func(name string) func(ctx context.Context, c *Conn, role Role) (Identity, error) {
		return func(ctx context.Context, c *Conn, role Role) (Identity, error) {
			var s *Stream
			var err error
			if role == RoleDialer {
				s, err = c.OpenStream(ctx)
			} else {
				s, err = c.AcceptStream(ctx)
			}
			if err != nil {
				return Identity{}, err
			}
			if _, err := s.Write(AppendFrame(nil, []byte(name))); err != nil {
				return Identity{}, err
			}
			_ = s.Close()
			peer, err := io.ReadAll(s)
			if err != nil {
				return Identity{}, err
			}
			return Identity{Node: string(peer[1:])}, nil
		}
	}
	authA := &recordingAuth{policy: exchange("a@host")}
	authB := &recordingAuth{policy: exchange("b@host")}
	a := startTransport(t, Config{Authenticator: authA})
	b := startTransport(t, Config{Authenticator: authB})
	dialed, accepted := connect(t, a, b)
	if dialed.Identity().Node != "b@host" || accepted.Identity().Node != "a@host" {
		t.Fatalf("identities %+v %+v", dialed.Identity(), accepted.Identity())
	}
	if len(authA.roles) != 1 || authA.roles[0] != RoleDialer || len(authB.roles) != 1 || authB.roles[0] != RoleAcceptor {
		t.Fatalf("roles: a=%v b=%v", authA.roles, authB.roles)
	}
}

func TestAuthenticatorErrorReachesDialer(t *testing.T) {
	// a rejects only once b's authenticator holds the conn, so b is sure
	// to see the rejection.
	bEntered := make(chan struct{})
	a := startTransport(t, Config{Authenticator: &recordingAuth{policy: func(ctx context.Context, _ *Conn, _ Role) (Identity, error) {
		select {
		case <-bEntered:
		case <-ctx.Done():
		}
		return Identity{}, errTest
	}}})
	// b's authenticator waits for the conn to end and reports why.
	causes := make(chan error, 1)
	b := startTransport(t, Config{Authenticator: &recordingAuth{policy: func(ctx context.Context, c *Conn, role Role) (Identity, error) {
		close(bEntered)
		select {
		case <-c.Context().Done():
			causes <- context.Cause(c.Context())
		case <-ctx.Done():
			causes <- ctx.Err()
		}
		return Identity{}, errTest
	}}})
	ctx := testContext(t, 5*time.Second)
	if _, err := a.Dial(ctx, b.Addr()); !errors.Is(err, errTest) {
		t.Fatalf("Dial: %v, want the Authenticator's error", err)
	}
	cause := <-causes
	var ce *CloseError
	if !errors.As(cause, &ce) || ce.Code != CodeAuthFailed || !ce.Remote {
		t.Fatalf("acceptor saw %v, want a remote CodeAuthFailed close", cause)
	}
}

func TestAuthenticatorRejectOnAccept(t *testing.T) {
	var calls atomic.Int32
	b := startTransport(t, Config{Authenticator: &recordingAuth{policy: func(context.Context, *Conn, Role) (Identity, error) {
		calls.Add(1)
		return Identity{}, errTest
	}}})
	a := startTransport(t, Config{})
	ctx := testContext(t, 5*time.Second)
	c, err := a.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cause := waitCause(t, c, 5*time.Second)
	var ce *CloseError
	if !errors.Is(cause, ErrPeerClosed) || !errors.As(cause, &ce) || ce.Code != CodeAuthFailed {
		t.Fatalf("dialer cause %v", cause)
	}
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := b.Accept(actx); err == nil {
		t.Fatalf("Accept yielded a rejected conn from %v", c.RemoteAddr())
	}
	if calls.Load() != 1 {
		t.Fatalf("authenticator called %d times", calls.Load())
	}
}

func TestStalledAuthenticatorDoesNotBlockOthers(t *testing.T) {
	stallers := adapter.NewFaulty(nil)
	var stalledAddr atomic.Value
	auth := &recordingAuth{policy: func(ctx context.Context, c *Conn, role Role) (Identity, error) {
		if c.RemoteAddr().String() == stalledAddr.Load() {
			<-ctx.Done() // stall until the handshake timeout
			return Identity{}, ctx.Err()
		}
		return Identity{Node: "ok"}, nil
	}}
	const handshake = 800 * time.Millisecond
	b := startTransport(t, Config{Authenticator: auth, HandshakeTimeout: handshake})
	slow := startTransport(t, Config{Adapter: stallers})
	fast := startTransport(t, Config{})
	stalledAddr.Store(slow.Addr().String())

	ctx := testContext(t, 5*time.Second)
	slowDone := make(chan error, 1)
	go func() {
		c, err := slow.Dial(ctx, b.Addr())
		if err != nil {
			slowDone <- err
			return
		}
		slowDone <- waitCauseNoFatal(c, 5*time.Second)
	}()
	// Give the slow dial a head start so its authenticator is running.
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	dialed, accepted := connect(t, fast, b)
	if el := time.Since(start); el > handshake/2 {
		t.Fatalf("fast peer waited %v behind a stalled one", el)
	}
	if accepted.Identity().Node != "ok" || dialed == nil {
		t.Fatal("fast peer not authenticated")
	}
	err := <-slowDone
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CodeHandshakeFailed {
		t.Fatalf("stalled peer: %v", err)
	}
}

func waitCauseNoFatal(c *Conn, within time.Duration) error {
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-time.After(within):
		return errors.New("conn still alive")
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	block := make(chan struct{})
	b := startTransport(t, Config{})
	a := startTransport(t, Config{HandshakeTimeout: 300 * time.Millisecond, Authenticator: &recordingAuth{policy: func(ctx context.Context, c *Conn, role Role) (Identity, error) {
		select {
		case <-ctx.Done():
			return Identity{}, ctx.Err()
		case <-block:
			return Identity{}, nil
		}
	}}})
	ctx := testContext(t, 5*time.Second)
	start := time.Now()
	_, err := a.Dial(ctx, b.Addr())
	if !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("Dial: %v, want ErrIdleTimeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Dial took %v", el)
	}
	close(block)

	// Dialing a silent address times out too.
	silent := adapter.NewFaulty(nil)
	silent.SetBlackhole(true)
	c := startTransport(t, Config{Adapter: silent})
	_, err = a.Dial(ctx, c.Addr())
	if !errors.Is(err, ErrIdleTimeout) {
		t.Fatalf("Dial to a blackhole: %v", err)
	}
}

func TestCloseIdempotentAndClosesEverything(t *testing.T) {
	a := startTransport(t, Config{})
	b := startTransport(t, Config{})
	dialed, accepted := connect(t, a, b)

	acceptErr := make(chan error, 1)
	go func() {
		_, err := b.Accept(context.Background())
		acceptErr <- err
	}()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := <-acceptErr; !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	if cause := waitCause(t, accepted, time.Second); !errors.Is(cause, ErrClosed) {
		t.Fatalf("local conn cause %v", cause)
	}
	cause := waitCause(t, dialed, 5*time.Second)
	var ce *CloseError
	if !errors.As(cause, &ce) || ce.Code != CodeShutdown || !errors.Is(cause, ErrPeerClosed) {
		t.Fatalf("peer conn cause %v", cause)
	}
	ctx := testContext(t, time.Second)
	if _, err := b.Dial(ctx, a.Addr()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close: %v", err)
	}
	if err := b.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	// Closing an unstarted transport is fine too.
	u, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
}
