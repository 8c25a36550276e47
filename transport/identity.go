package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// Identity handshake constants (docs/security.md).
const (
	// MinAuthVersion and MaxAuthVersion bound the identity handshake
	// versions this build speaks.
	MinAuthVersion = 1
	MaxAuthVersion = 1
	// DefaultFreshnessWindow is the default PeerAuthConfig.FreshnessWindow:
	// the longest a peer may take to answer a challenge.
	DefaultFreshnessWindow = 5 * time.Second
	// MaxAuthFrameSize caps one identity handshake frame.
	MaxAuthFrameSize = 4 << 10
	// AuthRejectGrace bounds how long a node that rejects a peer waits for
	// the peer to read the REJECT and close before it closes itself (at
	// most half the handshake time left).
	AuthRejectGrace = 500 * time.Millisecond

	authNonceSize        = 32
	channelBindingSize   = 32
	channelBindingLabel  = "EXPORTER-cask-auth-v1"
	signatureContext     = "cask-auth-v1 response\x00"
	bindingDigestContext = "cask-auth-v1 binding\x00"
	clusterProofContext  = "cask-auth-v1 cluster\x00"
	maxRejectDetail      = 256
)

// Identity handshake errors. An *AuthError carries one of them (or the I/O
// error that ended the handshake) with the peer's name; when the peer
// rejected this node it also matches ErrPeerRejected, and the sentinel is
// the reason the peer gave.
var (
	// ErrUntrustedKey: strict trust and no trusted key for the peer's name.
	ErrUntrustedKey = errors.New("transport: untrusted key")
	// ErrKeyMismatch: the key trusted for the peer's name is not the key it
	// presented (in both trust modes; re-pin with KeyStore.Trust).
	ErrKeyMismatch = errors.New("transport: key mismatch")
	// ErrBadSignature: the peer's signature does not verify with the key it
	// presented.
	ErrBadSignature = errors.New("transport: bad signature")
	// ErrStaleHandshake: the peer's response came after the freshness
	// window, or answers a challenge other than the one this connection
	// issued (a replay).
	ErrStaleHandshake = errors.New("transport: stale or replayed handshake")
	// ErrChannelBinding: the peer's response was made for another TLS
	// session: something relays the handshake between two connections.
	ErrChannelBinding = errors.New("transport: channel binding mismatch")
	// ErrClusterSecret: the cluster secret proof is missing or wrong.
	ErrClusterSecret = errors.New("transport: cluster secret mismatch")
	// ErrWrongPeer: the peer is not the node this node meant to reach, or
	// claims this node's own name.
	ErrWrongPeer = errors.New("transport: wrong peer")
	// ErrAuthVersion: no identity handshake version in common.
	ErrAuthVersion = errors.New("transport: no common identity handshake version")
	// ErrBadAuthMessage: a handshake frame was malformed, oversize or out
	// of order.
	ErrBadAuthMessage = errors.New("transport: bad identity handshake message")
	// ErrPeerRejected: the peer rejected this node; the AuthError also
	// matches the sentinel for the reason the peer gave, if it gave one.
	ErrPeerRejected = errors.New("transport: peer rejected this node")
)

// AuthError is the error of a failed identity handshake. The transport
// wraps it (Dial returns it, Accept logs it with the peer's name).
type AuthError struct {
	// Peer is the name the peer claimed, or the name this node dialed
	// when the peer said nothing yet; empty when neither is known.
	Peer string
	// Err is one of the sentinels above, or the error that ended the
	// handshake (a closed connection, a timeout).
	Err error
	// Remote says the peer rejected this node (its REJECT, or its close
	// with CodeAuthFailed); Err is then the reason it gave.
	Remote bool
	// Detail explains the failure for humans.
	Detail string
}

func (e *AuthError) Error() string {
	peer := e.Peer
	if peer == "" {
		peer = "unknown peer"
	}
	var msg string
	if e.Remote {
		msg = fmt.Sprintf("peer %s rejected this node: %v", peer, e.Err)
	} else {
		msg = fmt.Sprintf("peer %s: %v", peer, e.Err)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap gives Err, and ErrPeerRejected when Remote.
func (e *AuthError) Unwrap() []error {
	if e.Remote && e.Err != ErrPeerRejected {
		return []error{e.Err, ErrPeerRejected}
	}
	return []error{e.Err}
}

// TrustMode says what a node does with a key it has no trusted key for.
type TrustMode int

const (
	// TrustOnFirstUse (the default) trusts the first key a node name
	// presents and records it; later connections must present that key.
	TrustOnFirstUse TrustMode = iota
	// TrustStrict rejects every key not recorded beforehand (KeyStore.Trust
	// or a file under keys/trusted/).
	TrustStrict
)

func (m TrustMode) String() string {
	switch m {
	case TrustOnFirstUse:
		return "tofu"
	case TrustStrict:
		return "strict"
	}
	return fmt.Sprintf("trust_mode(%d)", int(m))
}

// PeerAuthConfig configures a PeerAuthenticator. Zero fields mean the
// documented defaults.
type PeerAuthConfig struct {
	// Name is this node's name (name@host). Required.
	Name string
	// Keys holds this node's key pair and its trusted keys. Required.
	Keys *KeyStore
	// Trust is the trust mode. Default TrustOnFirstUse.
	Trust TrustMode
	// ClusterSecret, when set, must be shared by every node: each proves
	// it knows it (an HMAC over the channel binding), in addition to the
	// signature. Empty means no cluster secret.
	ClusterSecret []byte
	// FreshnessWindow bounds the time from issuing a challenge to receiving
	// its response, on this node's monotonic clock. Default
	// DefaultFreshnessWindow.
	FreshnessWindow time.Duration
	// Now reads the clock; its readings must carry Go's monotonic clock
	// (as time.Now's do). Default time.Now. Tests inject their own.
	Now func() time.Time
	// Rand is the source of challenge nonces. Default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives structured logs. Nil means slog.Default().
	Logger *slog.Logger
}

// PeerAuthenticator is Cask's Authenticator: the Ed25519 mutual identity
// handshake, bound to the connection's TLS session, with TOFU or strict
// trust (docs/security.md). One serves every connection of a node; it is
// safe for concurrent use.
type PeerAuthenticator struct {
	cfg    PeerAuthConfig
	origin time.Time // origin of challenge timestamps
	log    *slog.Logger
}

var _ Authenticator = (*PeerAuthenticator)(nil)

// NewPeerAuthenticator checks cfg and fills its defaults.
func NewPeerAuthenticator(cfg PeerAuthConfig) (*PeerAuthenticator, error) {
	if err := ValidateNodeName(cfg.Name); err != nil {
		return nil, fmt.Errorf("transport: PeerAuthConfig.Name: %w", err)
	}
	if cfg.Keys == nil {
		return nil, errors.New("transport: PeerAuthConfig.Keys is required")
	}
	switch cfg.Trust {
	case TrustOnFirstUse, TrustStrict:
	default:
		return nil, fmt.Errorf("transport: PeerAuthConfig.Trust: unknown mode %d", int(cfg.Trust))
	}
	if cfg.FreshnessWindow < 0 {
		return nil, fmt.Errorf("transport: PeerAuthConfig.FreshnessWindow %v is negative", cfg.FreshnessWindow)
	}
	if cfg.FreshnessWindow == 0 {
		cfg.FreshnessWindow = DefaultFreshnessWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.ClusterSecret = bytes.Clone(cfg.ClusterSecret)
	return &PeerAuthenticator{cfg: cfg, origin: cfg.Now(), log: cfg.Logger}, nil
}

// Keys is the authenticator's KeyStore.
func (a *PeerAuthenticator) Keys() *KeyStore { return a.cfg.Keys }

type expectedPeerKey struct{}

// WithExpectedPeer returns a ctx for Dial that tells the Authenticator
// which node name the dialer means to reach: a peer that authenticates as
// another node fails with ErrWrongPeer before any key of it is trusted.
func WithExpectedPeer(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, expectedPeerKey{}, node)
}

func expectedPeer(ctx context.Context) string {
	s, _ := ctx.Value(expectedPeerKey{}).(string)
	return s
}

// Authenticate runs the identity handshake on c (see Authenticator).
func (a *PeerAuthenticator) Authenticate(ctx context.Context, c *Conn, role Role) (Identity, error) {
	h := &handshake{a: a, c: c, role: role, peer: expectedPeer(ctx)}
	if role == RoleDialer {
		h.expected = h.peer
	}
	id, err := h.run(ctx)
	if err == nil {
		return id, nil
	}
	var ae *AuthError
	if !errors.As(err, &ae) {
		ae = &AuthError{Peer: h.peer, Err: err}
		err = ae
	}
	if !ae.Remote && h.s != nil && c.Context().Err() == nil && ctx.Err() == nil {
		h.reject(ctx, ae)
	}
	return Identity{}, err
}

// handshake is one run of the identity handshake on one connection.
type handshake struct {
	a        *PeerAuthenticator
	c        *Conn
	role     Role
	expected string // dialer: the node it meant to reach, or ""

	s       *Stream
	br      *bufio.Reader
	buf     []byte
	binding []byte

	peer    string // claimed (or expected) peer name, for errors
	peerKey ed25519.PublicKey
	trusted bool // a trusted key matched peerKey
	version uint32

	nonce    []byte    // our challenge
	stamp    uint64    // our challenge's timestamp
	issuedAt time.Time // when we issued it (monotonic)
}

func (h *handshake) fail(sentinel error, format string, args ...any) error {
	return &AuthError{Peer: h.peer, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func (h *handshake) run(ctx context.Context) (Identity, error) {
	var err error
	h.binding, err = h.c.ExportKeyingMaterial(channelBindingLabel, nil, channelBindingSize)
	if err != nil {
		return Identity{}, fmt.Errorf("transport: export channel binding: %w", err)
	}
	if h.role == RoleDialer {
		h.s, err = h.c.OpenStream(ctx)
	} else {
		h.s, err = h.c.AcceptStream(ctx)
	}
	if err != nil {
		return Identity{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = h.s.SetDeadline(dl)
	}
	h.br = bufio.NewReaderSize(h.s, 1024)
	if h.role == RoleDialer {
		err = h.runDialer()
	} else {
		err = h.runAcceptor()
	}
	if err != nil {
		return Identity{}, err
	}
	_ = h.s.SetDeadline(time.Time{})
	_ = h.s.Close()
	h.s.CancelRead(CodeNone)
	return Identity{Node: h.peer, PublicKey: bytes.Clone(h.peerKey)}, nil
}

// runDialer: → hello, challenge; ← hello, challenge, response;
// → response, OK; ← OK.
func (h *handshake) runDialer() error {
	if err := h.issueChallenge(); err != nil {
		return err
	}
	if err := h.write(h.helloFrame(), h.challengeFrame()); err != nil {
		return err
	}
	ch, err := h.readHelloAndChallenge()
	if err != nil {
		return err
	}
	resp, err := h.read("response")
	if err != nil {
		return err
	}
	if err := h.verifyResponse(resp.GetResponse()); err != nil {
		return err
	}
	if err := h.trustPeer(); err != nil {
		return err
	}
	if err := h.write(h.responseFrame(ch), okFrame()); err != nil {
		return err
	}
	if _, err := h.read("result"); err != nil {
		return err
	}
	h.logAuthenticated()
	return nil
}

// runAcceptor: ← hello, challenge; → hello, challenge, response;
// ← response, OK; → OK.
func (h *handshake) runAcceptor() error {
	ch, err := h.readHelloAndChallenge()
	if err != nil {
		return err
	}
	if err := h.issueChallenge(); err != nil {
		return err
	}
	if err := h.write(h.helloFrame(), h.challengeFrame(), h.responseFrame(ch)); err != nil {
		return err
	}
	resp, err := h.read("response")
	if err != nil {
		return err
	}
	if err := h.verifyResponse(resp.GetResponse()); err != nil {
		return err
	}
	if _, err := h.read("result"); err != nil {
		return err
	}
	if err := h.trustPeer(); err != nil {
		return err
	}
	if err := h.write(okFrame()); err != nil {
		return err
	}
	h.logAuthenticated()
	return nil
}

// readHelloAndChallenge reads and checks the peer's HELLO and CHALLENGE,
// which both roles receive back to back.
func (h *handshake) readHelloAndChallenge() (*caskpb.AuthChallenge, error) {
	hello, err := h.read("hello")
	if err != nil {
		return nil, err
	}
	if err := h.checkHello(hello.GetHello()); err != nil {
		return nil, err
	}
	ch, err := h.read("challenge")
	if err != nil {
		return nil, err
	}
	if err := checkChallenge(ch.GetChallenge()); err != nil {
		return nil, h.fail(ErrBadAuthMessage, "%v", err)
	}
	return ch.GetChallenge(), nil
}

func (h *handshake) issueChallenge() error {
	h.nonce = make([]byte, authNonceSize)
	if _, err := io.ReadFull(h.a.cfg.Rand, h.nonce); err != nil {
		return fmt.Errorf("transport: challenge nonce: %w", err)
	}
	h.issuedAt = h.a.cfg.Now()
	h.stamp = uint64(max(h.issuedAt.Sub(h.a.origin), 0))
	return nil
}

func (h *handshake) helloFrame() *caskpb.AuthFrame {
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{
		Node: h.a.cfg.Name, PublicKey: h.a.cfg.Keys.PublicKey(),
		MinVersion: MinAuthVersion, MaxVersion: MaxAuthVersion, ToNode: h.expected,
	}}}
}

func (h *handshake) challengeFrame() *caskpb.AuthFrame {
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Challenge{Challenge: &caskpb.AuthChallenge{
		Nonce: h.nonce, Timestamp: h.stamp,
	}}}
}

// responseFrame signs the peer's challenge.
func (h *handshake) responseFrame(ch *caskpb.AuthChallenge) *caskpb.AuthFrame {
	me, myKey := h.a.cfg.Name, h.a.cfg.Keys.PublicKey()
	msg := signedTranscript(h.version, h.role, ch.GetNonce(), ch.GetTimestamp(), me, myKey, h.peer, h.peerKey, h.binding)
	r := &caskpb.AuthResponse{
		Signature:     h.a.cfg.Keys.sign(msg),
		Nonce:         ch.GetNonce(),
		Timestamp:     ch.GetTimestamp(),
		BindingDigest: bindingDigest(h.binding),
	}
	if len(h.a.cfg.ClusterSecret) > 0 {
		r.ClusterProof = clusterProof(h.a.cfg.ClusterSecret, h.role, h.binding, myKey)
	}
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Response{Response: r}}
}

func okFrame() *caskpb.AuthFrame {
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Result{Result: &caskpb.AuthResult{Ok: true}}}
}

func (h *handshake) write(frames ...*caskpb.AuthFrame) error {
	var out []byte
	for _, f := range frames {
		b, err := proto.Marshal(f)
		if err != nil {
			return fmt.Errorf("transport: encode identity handshake frame: %w", err)
		}
		out = AppendFrame(out, b)
	}
	if _, err := h.s.Write(out); err != nil {
		return &AuthError{Peer: h.peer, Err: err, Remote: isAuthClose(err)}
	}
	return nil
}

// read reads the next frame and checks that it is the wanted kind
// ("hello", "challenge", "response" or an OK "result"). A REJECT in its
// place ends the handshake with the peer's reason.
func (h *handshake) read(want string) (*caskpb.AuthFrame, error) {
	b, err := ReadFrame(h.br, h.buf, MaxAuthFrameSize)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame) ||
			errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, h.fail(ErrBadAuthMessage, "reading %s: %v", want, err)
		}
		return nil, &AuthError{Peer: h.peer, Err: err, Remote: isAuthClose(err), Detail: "reading " + want}
	}
	h.buf = b
	f, err := decodeAuthFrame(b)
	if err != nil {
		return nil, h.fail(ErrBadAuthMessage, "reading %s: %v", want, err)
	}
	if r := f.GetResult(); r != nil && !r.GetOk() {
		return nil, &AuthError{Peer: h.peer, Err: rejectSentinel(r.GetReason()), Remote: true,
			Detail: truncateReason(r.GetDetail())}
	}
	if got := authFrameKind(f); got != want {
		return nil, h.fail(ErrBadAuthMessage, "got %s, want %s", got, want)
	}
	return f, nil
}

// decodeAuthFrame decodes one identity handshake frame and checks the
// shape of its body (sizes, presence); it does not judge trust.
func decodeAuthFrame(b []byte) (*caskpb.AuthFrame, error) {
	var f caskpb.AuthFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	switch body := f.GetBody().(type) {
	case *caskpb.AuthFrame_Hello:
		hl := body.Hello
		if hl == nil {
			return nil, errors.New("empty hello")
		}
		if err := ValidateNodeName(hl.GetNode()); err != nil {
			return nil, err
		}
		if len(hl.GetPublicKey()) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("public key is %d bytes, want %d", len(hl.GetPublicKey()), ed25519.PublicKeySize)
		}
		if hl.GetMinVersion() > hl.GetMaxVersion() || hl.GetMinVersion() == 0 {
			return nil, fmt.Errorf("bad version range %d..%d", hl.GetMinVersion(), hl.GetMaxVersion())
		}
		if t := hl.GetToNode(); t != "" {
			if err := ValidateNodeName(t); err != nil {
				return nil, fmt.Errorf("to_node: %w", err)
			}
		}
	case *caskpb.AuthFrame_Challenge:
		if err := checkChallenge(body.Challenge); err != nil {
			return nil, err
		}
	case *caskpb.AuthFrame_Response:
		r := body.Response
		switch {
		case r == nil:
			return nil, errors.New("empty response")
		case len(r.GetSignature()) != ed25519.SignatureSize:
			return nil, fmt.Errorf("signature is %d bytes, want %d", len(r.GetSignature()), ed25519.SignatureSize)
		case len(r.GetNonce()) != authNonceSize:
			return nil, fmt.Errorf("echoed nonce is %d bytes, want %d", len(r.GetNonce()), authNonceSize)
		case len(r.GetBindingDigest()) != sha256.Size:
			return nil, fmt.Errorf("binding digest is %d bytes, want %d", len(r.GetBindingDigest()), sha256.Size)
		case len(r.GetClusterProof()) != 0 && len(r.GetClusterProof()) != sha256.Size:
			return nil, fmt.Errorf("cluster proof is %d bytes, want %d", len(r.GetClusterProof()), sha256.Size)
		}
	case *caskpb.AuthFrame_Result:
		if body.Result == nil {
			return nil, errors.New("empty result")
		}
		if len(body.Result.GetDetail()) > 4*maxRejectDetail {
			return nil, errors.New("result detail too long")
		}
	default:
		return nil, errors.New("no body")
	}
	return &f, nil
}

func checkChallenge(c *caskpb.AuthChallenge) error {
	if c == nil {
		return errors.New("empty challenge")
	}
	if len(c.GetNonce()) != authNonceSize {
		return fmt.Errorf("nonce is %d bytes, want %d", len(c.GetNonce()), authNonceSize)
	}
	return nil
}

func authFrameKind(f *caskpb.AuthFrame) string {
	switch f.GetBody().(type) {
	case *caskpb.AuthFrame_Hello:
		return "hello"
	case *caskpb.AuthFrame_Challenge:
		return "challenge"
	case *caskpb.AuthFrame_Response:
		return "response"
	case *caskpb.AuthFrame_Result:
		return "result"
	}
	return "nothing"
}

// checkHello judges the peer's hello: name, version, and the trusted key.
func (h *handshake) checkHello(p *caskpb.AuthHello) error {
	name := p.GetNode()
	h.peer = name
	h.peerKey = ed25519.PublicKey(bytes.Clone(p.GetPublicKey()))
	switch {
	case name == h.a.cfg.Name:
		return h.fail(ErrWrongPeer, "peer claims this node's own name")
	case h.expected != "" && name != h.expected:
		h.peer = h.expected
		return h.fail(ErrWrongPeer, "dialed %s but the peer is %s", h.expected, name)
	case h.role == RoleAcceptor && p.GetToNode() != "" && p.GetToNode() != h.a.cfg.Name:
		return h.fail(ErrWrongPeer, "peer wants %s, this is %s", p.GetToNode(), h.a.cfg.Name)
	}
	v := min(p.GetMaxVersion(), uint32(MaxAuthVersion))
	if v < max(p.GetMinVersion(), uint32(MinAuthVersion)) {
		return h.fail(ErrAuthVersion, "peer speaks %d..%d, this node %d..%d",
			p.GetMinVersion(), p.GetMaxVersion(), MinAuthVersion, MaxAuthVersion)
	}
	h.version = v
	pinned, ok, err := h.a.cfg.Keys.TrustedKey(name)
	switch {
	case err != nil:
		return &AuthError{Peer: name, Err: err}
	case ok && !bytes.Equal(pinned, h.peerKey):
		return h.fail(ErrKeyMismatch, "presented %s, trusted %s", KeyString(h.peerKey), KeyString(pinned))
	case ok:
		h.trusted = true
	case h.a.cfg.Trust == TrustStrict:
		return h.fail(ErrUntrustedKey, "no trusted key for %s (presented %s) in strict mode", name, KeyString(h.peerKey))
	}
	return nil
}

// verifyResponse checks the peer's answer to our challenge: that it answers
// this very challenge, in time, on this TLS session, signed by the key the
// peer presented, with the cluster secret if one is set.
func (h *handshake) verifyResponse(r *caskpb.AuthResponse) error {
	elapsed := h.a.cfg.Now().Sub(h.issuedAt)
	switch {
	case subtle.ConstantTimeCompare(r.GetNonce(), h.nonce) != 1 || r.GetTimestamp() != h.stamp:
		return h.fail(ErrStaleHandshake, "response answers another challenge")
	case elapsed < 0 || elapsed > h.a.cfg.FreshnessWindow:
		return h.fail(ErrStaleHandshake, "response after %v, window %v", elapsed.Round(time.Millisecond), h.a.cfg.FreshnessWindow)
	case subtle.ConstantTimeCompare(r.GetBindingDigest(), bindingDigest(h.binding)) != 1:
		return h.fail(ErrChannelBinding, "response was made for another TLS session (relayed handshake)")
	}
	peerRole := RoleAcceptor
	if h.role == RoleAcceptor {
		peerRole = RoleDialer
	}
	msg := signedTranscript(h.version, peerRole, h.nonce, h.stamp, h.peer, h.peerKey, h.a.cfg.Name, h.a.cfg.Keys.PublicKey(), h.binding)
	if !ed25519.Verify(h.peerKey, msg, r.GetSignature()) {
		return h.fail(ErrBadSignature, "signature does not verify with %s", KeyString(h.peerKey))
	}
	if secret := h.a.cfg.ClusterSecret; len(secret) > 0 {
		want := clusterProof(secret, peerRole, h.binding, h.peerKey)
		if !hmac.Equal(r.GetClusterProof(), want) {
			return h.fail(ErrClusterSecret, "peer does not prove the cluster secret")
		}
	}
	return nil
}

// trustPeer records the peer's proven key on first use (TOFU). A
// concurrent handshake may have recorded another key for the same name
// first: then this one is a mismatch.
func (h *handshake) trustPeer() error {
	if h.trusted {
		return nil
	}
	got, recorded, err := h.a.cfg.Keys.trustFirst(h.peer, h.peerKey)
	if err != nil {
		return &AuthError{Peer: h.peer, Err: err}
	}
	if !bytes.Equal(got, h.peerKey) {
		return h.fail(ErrKeyMismatch, "presented %s, trusted %s", KeyString(h.peerKey), KeyString(got))
	}
	if recorded {
		h.a.log.Info("transport: trusted peer key on first use", "peer", h.peer, "key", KeyString(h.peerKey))
	}
	h.trusted = true
	return nil
}

func (h *handshake) logAuthenticated() {
	h.c.logger.Debug("transport: peer authenticated", "peer", h.peer, "key", KeyString(h.peerKey))
}

// reject tells the peer why it was refused, then waits (bounded by
// AuthRejectGrace and ctx) for the peer to close the connection after
// reading it, so the reason reaches it before our close does.
func (h *handshake) reject(ctx context.Context, ae *AuthError) {
	detail := ae.Detail
	switch {
	case rejectReason(ae.Err) == caskpb.AuthRejectReason_AUTH_REJECT_REASON_INTERNAL:
		detail = "internal error" // local failures stay local
	case ae.Err == ErrKeyMismatch:
		// The local log names both keys; the peer learns only its own.
		detail = fmt.Sprintf("%s does not trust %s for %s", h.a.cfg.Name, KeyString(h.peerKey), h.peer)
	}
	if len(detail) > maxRejectDetail {
		detail = detail[:maxRejectDetail]
	}
	b, _ := proto.Marshal(&caskpb.AuthFrame{Body: &caskpb.AuthFrame_Result{Result: &caskpb.AuthResult{
		Reason: rejectReason(ae.Err), Detail: detail,
	}}})
	_ = h.s.SetWriteDeadline(time.Now().Add(AuthRejectGrace))
	defer h.s.SetWriteDeadline(time.Time{})
	if _, err := h.s.Write(AppendFrame(nil, b)); err != nil {
		return
	}
	_ = h.s.Close()
	grace := AuthRejectGrace
	if dl, ok := ctx.Deadline(); ok {
		// Leave the handshake budget unspent, so the close says why.
		grace = min(grace, time.Until(dl)/2)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-h.c.Context().Done():
	case <-ctx.Done():
	case <-t.C:
	}
}

var rejectReasons = []struct {
	reason   caskpb.AuthRejectReason
	sentinel error
}{
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_BAD_MESSAGE, ErrBadAuthMessage},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_VERSION, ErrAuthVersion},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_WRONG_NODE, ErrWrongPeer},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_UNTRUSTED_KEY, ErrUntrustedKey},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_KEY_MISMATCH, ErrKeyMismatch},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_BAD_SIGNATURE, ErrBadSignature},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_STALE, ErrStaleHandshake},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_CHANNEL_BINDING, ErrChannelBinding},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_CLUSTER_SECRET, ErrClusterSecret},
}

// rejectReason is the wire reason for a local failure.
func rejectReason(err error) caskpb.AuthRejectReason {
	for _, r := range rejectReasons {
		if err == r.sentinel {
			return r.reason
		}
	}
	return caskpb.AuthRejectReason_AUTH_REJECT_REASON_INTERNAL
}

// rejectSentinel is the sentinel for a reason the peer gave.
func rejectSentinel(reason caskpb.AuthRejectReason) error {
	for _, r := range rejectReasons {
		if reason == r.reason {
			return r.sentinel
		}
	}
	return ErrPeerRejected
}

// isAuthClose reports an error caused by the peer closing the connection
// with CodeAuthFailed: it rejected this node without (or before we read)
// a REJECT frame.
func isAuthClose(err error) bool {
	var ce *CloseError
	return errors.As(err, &ce) && ce.Remote && ce.Code == CodeAuthFailed
}

// signedTranscript is what a response signs (docs/security.md): a context
// string, the version, the signer's role, the challenge (nonce and
// timestamp), the signer's and the verifier's names and keys, and the
// TLS exporter value of this connection.
func signedTranscript(version uint32, signer Role, nonce []byte, stamp uint64, signerName string, signerKey []byte, verifierName string, verifierKey, binding []byte) []byte {
	b := make([]byte, 0, 256)
	b = append(b, signatureContext...)
	b = binary.BigEndian.AppendUint32(b, version)
	b = append(b, byte(signer))
	b = appendField(b, nonce)
	b = binary.BigEndian.AppendUint64(b, stamp)
	b = appendField(b, []byte(signerName))
	b = appendField(b, signerKey)
	b = appendField(b, []byte(verifierName))
	b = appendField(b, verifierKey)
	b = appendField(b, binding)
	return b
}

func appendField(b, f []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
	return append(b, f...)
}

func bindingDigest(binding []byte) []byte {
	h := sha256.New()
	h.Write([]byte(bindingDigestContext))
	h.Write(binding)
	return h.Sum(nil)
}

func clusterProof(secret []byte, signer Role, binding, signerKey []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(clusterProofContext))
	m.Write([]byte{byte(signer)})
	m.Write(appendField(nil, binding))
	m.Write(appendField(nil, signerKey))
	return m.Sum(nil)
}
