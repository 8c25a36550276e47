package identity

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// testKeys returns a deterministic in-memory KeyStore for name.
func testKeys(name string) *KeyStore {
	seed := sha256.Sum256([]byte("cask test key " + name))
	return NewMemoryKeyStore(ed25519.NewKeyFromSeed(seed[:]))
}

// authNode is a transport running the Authenticator, with a log
// recorder.
type authNode struct {
	name string
	tr   *transport.Transport
	auth *Authenticator
	logs *logRecorder
}

func startAuthNode(t *testing.T, name string, mut func(*Config)) *authNode {
	t.Helper()
	logs := &logRecorder{}
	cfg := Config{Name: name, Keys: testKeys(name), Logger: slog.New(logs)}
	if mut != nil {
		mut(&cfg)
	}
	auth, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tr := startTransport(t, transport.Config{Authenticator: auth, Logger: slog.New(logs)})
	return &authNode{name: name, tr: tr, auth: auth, logs: logs}
}

// logRecorder is a slog.Handler that keeps every record with its
// attributes flattened to key=value text.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	attrs []slog.Attr
	root  *logRecorder
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range l.attrs {
		b.WriteString(" " + a.String())
	}
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	root := l
	if l.root != nil {
		root = l.root
	}
	root.mu.Lock()
	root.lines = append(root.lines, b.String())
	root.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	root := l
	if l.root != nil {
		root = l.root
	}
	return &logRecorder{attrs: append(append([]slog.Attr(nil), l.attrs...), as...), root: root}
}
func (l *logRecorder) WithGroup(string) slog.Handler { return l }

// find returns the first line containing every part.
func (l *logRecorder) find(parts ...string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		return line, true
	}
	return "", false
}

// waitLog polls until a line with every part is logged.
func (l *logRecorder) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := l.find(parts...); ok {
			return
		}
		if time.Now().After(deadline) {
			l.mu.Lock()
			t.Fatalf("no log line with %q; got:\n%s", parts, strings.Join(l.lines, "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// dialAuth dials b from a, expecting b's name, and returns the dial error
// and (on success) both conns.
func dialAuth(t *testing.T, a, b *authNode) (dialed, accepted *transport.Conn, err error) {
	t.Helper()
	ctx := testContext(t, 5*time.Second)
	acc := make(chan *transport.Conn, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		c, _ := b.tr.Accept(actx)
		acc <- c
	}()
	dialed, err = a.tr.Dial(WithExpectedPeer(ctx, b.name), b.tr.Addr())
	if err != nil {
		cancel()
		if c := <-acc; c != nil {
			t.Errorf("acceptor handed out a conn although the dialer failed: %v", c.Identity())
		}
		return nil, nil, err
	}
	return dialed, <-acc, nil
}

func TestIdentityMutualTOFU(t *testing.T) {
	a := startAuthNode(t, "a@host", nil)
	b := startAuthNode(t, "b@host", nil)
	dialed, accepted, err := dialAuth(t, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if id := dialed.Identity(); id.Node != "b@host" || !ed25519.PublicKey(id.PublicKey).Equal(b.auth.Keys().PublicKey()) {
		t.Errorf("dialer sees %+v", id)
	}
	if id := accepted.Identity(); id.Node != "a@host" || !ed25519.PublicKey(id.PublicKey).Equal(a.auth.Keys().PublicKey()) {
		t.Errorf("acceptor sees %+v", id)
	}
	// First contact recorded both keys.
	for _, tc := range []struct {
		n    *authNode
		peer *authNode
	}{{a, b}, {b, a}} {
		k, ok, err := tc.n.auth.Keys().TrustedKey(tc.peer.name)
		if err != nil || !ok || !k.Equal(tc.peer.auth.Keys().PublicKey()) {
			t.Errorf("%s trusts %x %v %v for %s", tc.n.name, k, ok, err, tc.peer.name)
		}
		tc.n.logs.waitLog(t, "trusted peer key on first use", "peer="+tc.peer.name)
	}
	// A second connection is checked against the recorded keys.
	if _, _, err := dialAuth(t, a, b); err != nil {
		t.Fatalf("second connection: %v", err)
	}
	// The handshake stream is gone: the next bidi stream is the app's.
	wait := echoStreams(t, accepted)
	s, err := dialed.OpenStream(testContext(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if got, err := io.ReadAll(s); err != nil || string(got) != "ping" {
		t.Fatalf("echo after handshake: %q %v", got, err)
	}
	_ = dialed.CloseWithError(transport.CodeNone, "")
	wait()
}

func TestIdentityStrictUntrustedKey(t *testing.T) {
	a := startAuthNode(t, "a@host", nil)
	b := startAuthNode(t, "b@host", func(c *Config) { c.Trust = TrustStrict })
	_, _, err := dialAuth(t, a, b)
	if !errors.Is(err, ErrUntrustedKey) || !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("dial: %v, want ErrUntrustedKey from the peer", err)
	}
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Peer != "b@host" || !ae.Remote {
		t.Fatalf("dial error %#v, want a remote AuthError naming b@host", ae)
	}
	// Both sides log it with the peer name.
	b.logs.waitLog(t, "authentication failed", "peer=a@host", "untrusted key")
	a.logs.waitLog(t, "authentication failed", "peer=b@host", "untrusted key")
	if _, ok, _ := b.auth.Keys().TrustedKey("a@host"); ok {
		t.Error("strict node recorded an unknown key")
	}

	// Once trusted explicitly, it connects.
	if err := b.auth.Keys().Trust("a@host", a.auth.Keys().PublicKey()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialAuth(t, a, b); err != nil {
		t.Fatalf("after Trust: %v", err)
	}
}

func TestIdentityKeyMismatchBothModes(t *testing.T) {
	other := testKeys("impostor").PublicKey()
	for _, mode := range []TrustMode{TrustOnFirstUse, TrustStrict} {
		t.Run(mode.String(), func(t *testing.T) {
			// The acceptor holds a different key for the dialer.
			a := startAuthNode(t, "a@host", nil)
			b := startAuthNode(t, "b@host", func(c *Config) { c.Trust = mode })
			if err := b.auth.Keys().Trust("a@host", other); err != nil {
				t.Fatal(err)
			}
			_, _, err := dialAuth(t, a, b)
			var ae *AuthError
			if !errors.Is(err, ErrKeyMismatch) || !errors.As(err, &ae) || !ae.Remote {
				t.Fatalf("dial: %v, want ErrKeyMismatch from the peer", err)
			}
			b.logs.waitLog(t, "authentication failed", "peer=a@host", "key mismatch")

			// The dialer holds a different key for the acceptor.
			c := startAuthNode(t, "c@host", func(c *Config) { c.Trust = mode })
			if err := c.auth.Keys().Trust("b@host", other); err != nil {
				t.Fatal(err)
			}
			if err := b.auth.Keys().Trust("c@host", c.auth.Keys().PublicKey()); err != nil {
				t.Fatal(err)
			}
			_, _, err = dialAuth(t, c, b)
			if !errors.Is(err, ErrKeyMismatch) || errors.Is(err, ErrPeerRejected) {
				t.Fatalf("dial: %v, want a local ErrKeyMismatch", err)
			}
			b.logs.waitLog(t, "authentication failed", "peer=c@host", "rejected this node", "key mismatch")
			// The pin is never replaced by the handshake.
			if k, _, _ := c.auth.Keys().TrustedKey("b@host"); !k.Equal(other) {
				t.Error("the handshake replaced a pin")
			}
		})
	}
}

func TestIdentityWrongPeer(t *testing.T) {
	a := startAuthNode(t, "a@host", nil)
	b := startAuthNode(t, "b@host", nil)
	b.name = "c@host" // a dials b's address expecting c@host
	_, _, err := dialAuth(t, a, b)
	if !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("dial: %v, want ErrWrongPeer", err)
	}
	for _, n := range []string{"b@host", "c@host"} {
		if _, ok, _ := a.auth.Keys().TrustedKey(n); ok {
			t.Errorf("a recorded a key for %s", n)
		}
	}
}

func TestIdentityClusterSecret(t *testing.T) {
	secret := func(s string) func(*Config) {
		return func(c *Config) { c.ClusterSecret = []byte(s) }
	}
	a := startAuthNode(t, "a@host", secret("s3cret"))
	b := startAuthNode(t, "b@host", secret("s3cret"))
	if _, _, err := dialAuth(t, a, b); err != nil {
		t.Fatalf("same secret: %v", err)
	}
	c := startAuthNode(t, "c@host", secret("other"))
	if _, _, err := dialAuth(t, c, b); !errors.Is(err, ErrClusterSecret) {
		t.Fatalf("different secret: %v, want ErrClusterSecret", err)
	}
	d := startAuthNode(t, "d@host", nil)
	if _, _, err := dialAuth(t, d, b); !errors.Is(err, ErrClusterSecret) {
		t.Fatalf("no secret: %v, want ErrClusterSecret", err)
	}
	b.logs.waitLog(t, "authentication failed", "peer=d@host", "cluster secret")
}

// evilDialer drives the dialer side of the handshake by hand, so a test
// can tamper with its response. It records the challenge and response of
// every run.
type evilDialer struct {
	name string
	keys *KeyStore
	// tamper edits the response before it is sent.
	tamper func(r *caskpb.AuthResponse, ch *caskpb.AuthChallenge)
	// beforeResponse runs just before the response is sent.
	beforeResponse func()

	mu        sync.Mutex
	responses []*caskpb.AuthResponse
}

func (e *evilDialer) Authenticate(ctx context.Context, c *transport.Conn, role transport.Role) (transport.Identity, error) {
	s, err := c.OpenStream(ctx)
	if err != nil {
		return transport.Identity{}, err
	}
	dl, _ := ctx.Deadline()
	_ = s.SetDeadline(dl)
	nonce := make([]byte, nonceSize)
	hello := &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{
		Node: e.name, PublicKey: e.keys.PublicKey(), MinVersion: 1, MaxVersion: 1}}}
	chal := &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Challenge{Challenge: &caskpb.AuthChallenge{Nonce: nonce}}}
	if err := writeAuthFrames(s, hello, chal); err != nil {
		return transport.Identity{}, err
	}
	br := bufio.NewReader(s)
	var peerHello *caskpb.AuthHello
	var peerChal *caskpb.AuthChallenge
	for range 3 {
		f, err := readAuthFrame(br)
		if err != nil {
			return transport.Identity{}, err
		}
		switch {
		case f.GetHello() != nil:
			peerHello = f.GetHello()
		case f.GetChallenge() != nil:
			peerChal = f.GetChallenge()
		case f.GetResult() != nil:
			return transport.Identity{}, &AuthError{Err: rejectSentinel(f.GetResult().GetReason()), Remote: true}
		}
	}
	binding, _ := c.ExportKeyingMaterial(channelBindingLabel, nil, channelBindingSize)
	msg := signedTranscript(1, transport.RoleDialer, peerChal.GetNonce(), peerChal.GetTimestamp(), e.name, e.keys.PublicKey(), peerHello.GetNode(), peerHello.GetPublicKey(), binding)
	resp := &caskpb.AuthResponse{Signature: e.keys.sign(msg), Nonce: peerChal.GetNonce(), Timestamp: peerChal.GetTimestamp(), BindingDigest: bindingDigest(binding)}
	e.mu.Lock()
	e.responses = append(e.responses, proto.Clone(resp).(*caskpb.AuthResponse))
	e.mu.Unlock()
	if e.tamper != nil {
		e.tamper(resp, peerChal)
	}
	if e.beforeResponse != nil {
		e.beforeResponse()
	}
	if err := writeAuthFrames(s, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Response{Response: resp}}, okFrame()); err != nil {
		return transport.Identity{}, err
	}
	f, err := readAuthFrame(br)
	if err != nil {
		return transport.Identity{}, err
	}
	if r := f.GetResult(); r == nil || !r.GetOk() {
		return transport.Identity{}, &AuthError{Peer: peerHello.GetNode(), Err: rejectSentinel(r.GetReason()), Remote: true, Detail: r.GetDetail()}
	}
	return transport.Identity{Node: peerHello.GetNode()}, nil
}

func writeAuthFrames(s *transport.Stream, frames ...*caskpb.AuthFrame) error {
	var out []byte
	for _, f := range frames {
		b, err := proto.Marshal(f)
		if err != nil {
			return err
		}
		out = transport.AppendFrame(out, b)
	}
	_, err := s.Write(out)
	return err
}

func readAuthFrame(br *bufio.Reader) (*caskpb.AuthFrame, error) {
	b, err := transport.ReadFrame(br, nil, MaxFrameSize)
	if err != nil {
		return nil, err
	}
	var f caskpb.AuthFrame
	return &f, proto.Unmarshal(b, &f)
}

func startEvil(t *testing.T, e *evilDialer) *transport.Transport {
	if e.keys == nil {
		e.keys = testKeys(e.name)
	}
	return startTransport(t, transport.Config{Authenticator: e})
}

// fakeClock is a monotonic test clock the test moves by hand.
type fakeClock struct {
	base time.Time
	off  atomic.Int64
}

func (c *fakeClock) now() time.Time          { return c.base.Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestIdentityHandshakeTampering(t *testing.T) {
	clock := &fakeClock{base: time.Now()}
	b := startAuthNode(t, "b@host", func(c *Config) {
		c.Now = clock.now
		c.FreshnessWindow = time.Second
	})
	dial := func(e *evilDialer) error {
		t.Helper()
		tr := startEvil(t, e)
		_, err := tr.Dial(testContext(t, 5*time.Second), b.tr.Addr())
		return err
	}

	// An honest run through the hand-driven dialer succeeds (so the
	// failures below are caused by the tampering alone).
	honest := &evilDialer{name: "e@host"}
	if err := dial(honest); err != nil {
		t.Fatalf("honest hand-driven dialer: %v", err)
	}

	cases := []struct {
		name string
		e    *evilDialer
		want error
	}{
		{"bad signature", &evilDialer{name: "e@host", tamper: func(r *caskpb.AuthResponse, _ *caskpb.AuthChallenge) {
			r.Signature[7] ^= 0x40
		}}, ErrBadSignature},
		{"signed by another key", &evilDialer{name: "e@host", tamper: func(r *caskpb.AuthResponse, ch *caskpb.AuthChallenge) {
			r.Signature = testKeys("x").sign([]byte("whatever"))
		}}, ErrBadSignature},
		{"replayed response", &evilDialer{name: "e@host", tamper: func(r *caskpb.AuthResponse, _ *caskpb.AuthChallenge) {
			honest.mu.Lock()
			old := honest.responses[0]
			honest.mu.Unlock()
			proto.Reset(r)
			proto.Merge(r, old)
		}}, ErrStaleHandshake},
		{"response to a replayed challenge", &evilDialer{name: "e@host", tamper: func(r *caskpb.AuthResponse, _ *caskpb.AuthChallenge) {
			// Answers the old challenge, correctly signed on this session.
			honest.mu.Lock()
			old := honest.responses[0]
			honest.mu.Unlock()
			r.Nonce, r.Timestamp = old.Nonce, old.Timestamp
		}}, ErrStaleHandshake},
		{"stale response", &evilDialer{name: "e@host", beforeResponse: func() {
			clock.advance(2 * time.Second) // past b's 1 s freshness window
		}}, ErrStaleHandshake},
		{"binding digest of another session", &evilDialer{name: "e@host", tamper: func(r *caskpb.AuthResponse, _ *caskpb.AuthChallenge) {
			r.BindingDigest = bindingDigest(make([]byte, channelBindingSize))
		}}, ErrChannelBinding},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dial(tc.e)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrPeerRejected) {
				t.Fatalf("dial: %v, want %v from the peer", err, tc.want)
			}
			b.logs.waitLog(t, "authentication failed", "peer=e@host", tc.want.Error())
		})
	}
}

// TestIdentityRelayFailsOnChannelBinding: a man in the middle on loopback
// terminates two TLS sessions (a→M, M→b) and forwards the handshake
// frames between them. The responses are bound to the session they were
// made on, so the handshake fails; rewriting the binding digest only turns
// the failure into a bad signature.
func TestIdentityRelayFailsOnChannelBinding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rewrite bool
		want    error
	}{
		{"forward", false, ErrChannelBinding},
		{"rewrite binding digest", true, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startAuthNode(t, "a@host", nil)
			b := startAuthNode(t, "b@host", nil)
			mitm := startTransport(t, transport.Config{}) // no Authenticator: a plain TLS terminator
			relayDone := make(chan struct{})
			go func() {
				defer close(relayDone)
				runRelayMITM(t, mitm, b.tr.Addr(), tc.rewrite)
			}()
			ctx := testContext(t, 5*time.Second)
			_, err := a.tr.Dial(WithExpectedPeer(ctx, "b@host"), mitm.Addr())
			if !errors.Is(err, tc.want) || errors.Is(err, ErrPeerRejected) {
				t.Fatalf("dial through the relay: %v, want a local %v", err, tc.want)
			}
			a.logs.waitLog(t, "authentication failed", "peer=b@host", tc.want.Error())
			b.logs.waitLog(t, "authentication failed", "peer=a@host", "rejected this node")
			if _, ok, _ := a.auth.Keys().TrustedKey("b@host"); ok {
				t.Error("a trusted a key learned through the relay")
			}
			<-relayDone
		})
	}
}

// runRelayMITM accepts one connection, dials target, and copies the
// handshake stream both ways (optionally rewriting the acceptor's binding
// digest to the one the dialer expects) until either side ends.
func runRelayMITM(t *testing.T, m *transport.Transport, target net.Addr, rewrite bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	front, err := m.Accept(ctx)
	if err != nil {
		t.Errorf("mitm accept: %v", err)
		return
	}
	defer front.CloseWithError(transport.CodeNone, "")
	back, err := m.Dial(ctx, target)
	if err != nil {
		t.Errorf("mitm dial: %v", err)
		return
	}
	defer back.CloseWithError(transport.CodeNone, "")
	fs, err := front.AcceptStream(ctx)
	if err != nil {
		return
	}
	bs, err := back.OpenStream(ctx)
	if err != nil {
		return
	}
	frontBinding, _ := front.ExportKeyingMaterial(channelBindingLabel, nil, channelBindingSize)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // dialer → acceptor, verbatim
		defer wg.Done()
		_, _ = io.Copy(bs, fs)
		_ = bs.Close()
	}()
	go func() { // acceptor → dialer, frame by frame
		defer wg.Done()
		defer fs.Close()
		br := bufio.NewReader(bs)
		for {
			f, err := readAuthFrame(br)
			if err != nil {
				return
			}
			if r := f.GetResponse(); r != nil && rewrite {
				r.BindingDigest = bindingDigest(frontBinding)
			}
			if writeAuthFrames(fs, f) != nil {
				return
			}
		}
	}()
	select {
	case <-front.Context().Done():
	case <-back.Context().Done():
	case <-ctx.Done():
	}
	front.CloseWithError(transport.CodeNone, "")
	back.CloseWithError(transport.CodeNone, "")
	wg.Wait()
}

// TestIdentityBadInputLosesOnlyThatConnection: a peer flooding garbage
// frames and one stalling its handshake each lose their own connection,
// promptly or at HandshakeTimeout, while an honest peer's traffic flows.
func TestIdentityBadInputLosesOnlyThatConnection(t *testing.T) {
	const handshake = 500 * time.Millisecond
	logs := &logRecorder{}
	auth, err := New(Config{Name: "b@host", Keys: testKeys("b@host"), Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	b := &authNode{name: "b@host", auth: auth, logs: logs,
		tr: startTransport(t, transport.Config{Authenticator: auth, HandshakeTimeout: handshake, Logger: slog.New(logs)})}
	a := startAuthNode(t, "a@host", nil)
	dialed, accepted, err := dialAuth(t, a, b)
	if err != nil {
		t.Fatal(err)
	}
	wait := echoStreams(t, accepted)
	defer wait()
	defer dialed.CloseWithError(transport.CodeNone, "")

	raw := startTransport(t, transport.Config{}) // no Authenticator
	ctx := testContext(t, 5*time.Second)
	staller, err := raw.Dial(ctx, b.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	stallStart := time.Now()
	stallEnded := make(chan time.Duration, 1)
	go func() {
		<-staller.Context().Done()
		stallEnded <- time.Since(stallStart)
	}()
	garbage := []struct {
		name  string
		bytes []byte
	}{
		{"oversize length", transport.AppendFrameHeader(nil, MaxFrameSize+1)},
		{"malformed length", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{"not a protobuf", transport.AppendFrame(nil, []byte{0xff, 0xff, 0xff})},
		{"dist frame first", transport.AppendFrame(nil, []byte{0x0a, 0x06, 'e', 'v', 'i', 'l', '@', 'x', 0x10, 0x01})},
		{"challenge first", mustAuthFrame(t, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Challenge{Challenge: &caskpb.AuthChallenge{Nonce: make([]byte, 32)}}})},
		{"short key", mustAuthFrame(t, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{Node: "g@host", PublicKey: []byte{1, 2}, MinVersion: 1, MaxVersion: 1}}})},
		{"path in name", mustAuthFrame(t, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{Node: "../../etc@passwd", PublicKey: make([]byte, 32), MinVersion: 1, MaxVersion: 1}}})},
		{"version from the future", mustAuthFrame(t, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{Node: "g@host", PublicKey: make([]byte, 32), MinVersion: 7, MaxVersion: 9}}})},
	}
	for _, g := range garbage {
		c, err := raw.Dial(ctx, b.tr.Addr())
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(g.bytes); err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		cause := waitCause(t, c, 3*time.Second)
		if el := time.Since(sent); el > RejectGrace+time.Second {
			t.Errorf("%s: dropped after %v", g.name, el)
		}
		var ce *transport.CloseError
		if !errors.As(cause, &ce) || !ce.Remote || ce.Code != transport.CodeAuthFailed {
			t.Errorf("%s: conn ended with %v, want a CodeAuthFailed close by the peer", g.name, cause)
		}
		// The honest peer keeps working.
		echoOnce(t, dialed, g.name)
	}
	cause := waitCause(t, staller, 5*time.Second)
	if el := <-stallEnded; el > handshake+time.Second {
		t.Errorf("staller dropped after %v, HandshakeTimeout is %v", el, handshake)
	}
	var ce *transport.CloseError
	if !errors.As(cause, &ce) || ce.Code != transport.CodeHandshakeFailed {
		t.Errorf("staller ended with %v, want CodeHandshakeFailed", cause)
	}
	echoOnce(t, dialed, "after the staller")
	if _, ok, _ := auth.Keys().TrustedKey("g@host"); ok {
		t.Error("a garbage peer got its key trusted")
	}
}

func mustAuthFrame(t *testing.T, f *caskpb.AuthFrame) []byte {
	t.Helper()
	b, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return transport.AppendFrame(nil, b)
}

func echoOnce(t *testing.T, c *transport.Conn, msg string) {
	t.Helper()
	s, err := c.OpenStream(testContext(t, 5*time.Second))
	if err != nil {
		t.Fatalf("%s: open: %v", msg, err)
	}
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatalf("%s: write: %v", msg, err)
	}
	_ = s.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != msg {
		t.Fatalf("%s: echo %q, %v", msg, got, err)
	}
}

func TestConfigValidation(t *testing.T) {
	keys := testKeys("a@host")
	for _, cfg := range []Config{
		{Name: "nohost", Keys: keys},
		{Name: "a@host"},
		{Name: "a@host", Keys: keys, Trust: TrustMode(9)},
		{Name: "a@host", Keys: keys, FreshnessWindow: -time.Second},
		{Name: "a/b@host", Keys: keys},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// A rejection whose REJECT frame is overtaken by the close still names
// the reason: the close's reason text carries the sentinel.
func TestCloseSentinel(t *testing.T) {
	for _, r := range rejectReasons {
		ce := &transport.CloseError{Remote: true, Code: transport.CodeAuthFailed,
			Reason: "transport: authenticate: peer evil@h: " + r.sentinel.Error() + ": detail"}
		if got := closeSentinel(fmt.Errorf("reading result: %w", ce)); got != r.sentinel {
			t.Errorf("close naming %v gave %v", r.sentinel, got)
		}
	}
	if got := closeSentinel(&transport.CloseError{Remote: true, Code: transport.CodeAuthFailed, Reason: "something else"}); got != ErrPeerRejected {
		t.Errorf("close naming no sentinel gave %v", got)
	}
}
