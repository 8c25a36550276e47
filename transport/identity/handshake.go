package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// Handshake constants (docs/security.md).
const (
	channelBindingSize   = 32
	channelBindingLabel  = "EXPORTER-cask-auth-v1"
	signatureContext     = "cask-auth-v1 response\x00"
	bindingDigestContext = "cask-auth-v1 binding\x00"
	clusterProofContext  = "cask-auth-v1 cluster\x00"
)

// handshake is one run of the identity handshake on one connection.
type handshake struct {
	a        *Authenticator
	c        *transport.Conn
	role     transport.Role
	expected string // dialer: the node it meant to reach, or ""

	s       *transport.Stream
	br      *bufio.Reader
	buf     []byte
	binding []byte

	peer          string // claimed (or expected) peer name, for errors
	peerKey       ed25519.PublicKey
	peerEphemeral bool // the peer's hello says its key is ephemeral
	trusted       bool // a trusted key matched peerKey
	version       uint32

	nonce    []byte    // our challenge
	stamp    uint64    // our challenge's timestamp
	issuedAt time.Time // when we issued it (monotonic)
}

func (h *handshake) fail(sentinel error, format string, args ...any) error {
	return &AuthError{Peer: h.peer, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

func (h *handshake) run(ctx context.Context) (transport.Identity, error) {
	var err error
	h.binding, err = h.c.ExportKeyingMaterial(channelBindingLabel, nil, channelBindingSize)
	if err != nil {
		return transport.Identity{}, fmt.Errorf("identity: export channel binding: %w", err)
	}
	if h.role == transport.RoleDialer {
		h.s, err = h.c.OpenStream(ctx)
	} else {
		h.s, err = h.c.AcceptStream(ctx)
	}
	if err != nil {
		return transport.Identity{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = h.s.SetDeadline(dl)
	}
	h.br = bufio.NewReaderSize(h.s, 1024)
	if h.role == transport.RoleDialer {
		err = h.runDialer()
	} else {
		err = h.runAcceptor()
	}
	if err != nil {
		return transport.Identity{}, err
	}
	_ = h.s.SetDeadline(time.Time{})
	_ = h.s.Close()
	h.s.CancelRead(transport.CodeNone)
	return transport.Identity{Node: h.peer, PublicKey: bytes.Clone(h.peerKey)}, nil
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
		return nil, h.fail(ErrBadMessage, "%v", err)
	}
	return ch.GetChallenge(), nil
}

func (h *handshake) issueChallenge() error {
	h.nonce = make([]byte, nonceSize)
	if _, err := io.ReadFull(h.a.cfg.Rand, h.nonce); err != nil {
		return fmt.Errorf("identity: challenge nonce: %w", err)
	}
	h.issuedAt = h.a.cfg.Now()
	h.stamp = uint64(max(h.issuedAt.Sub(h.a.origin), 0))
	return nil
}

func (h *handshake) helloFrame() *caskpb.AuthFrame {
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{
		Node: h.a.cfg.Name, PublicKey: h.a.cfg.Keys.PublicKey(),
		MinVersion: MinVersion, MaxVersion: MaxVersion, ToNode: h.expected,
		Ephemeral: h.a.cfg.Keys.Ephemeral(),
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

func (h *handshake) write(frames ...*caskpb.AuthFrame) error {
	out, err := appendAuthFrames(nil, frames...)
	if err != nil {
		return err
	}
	if _, err := h.s.Write(out); err != nil {
		if isAuthClose(err) {
			return &AuthError{Peer: h.peer, Err: closeSentinel(err), Remote: true, Detail: err.Error()}
		}
		return &AuthError{Peer: h.peer, Err: err}
	}
	return nil
}

// read reads the next frame and checks that it is the wanted kind
// ("hello", "challenge", "response" or an OK "result"). A REJECT in its
// place ends the handshake with the peer's reason.
func (h *handshake) read(want string) (*caskpb.AuthFrame, error) {
	b, err := transport.ReadFrame(h.br, h.buf, MaxFrameSize)
	if err != nil {
		if errors.Is(err, transport.ErrFrameTooLarge) || errors.Is(err, transport.ErrMalformedFrame) ||
			errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, h.fail(ErrBadMessage, "reading %s: %v", want, err)
		}
		if isAuthClose(err) {
			// Rejected, but the REJECT frame did not arrive before the
			// close (a loaded peer closes soon after writing it): the
			// close reason names the same sentinel.
			return nil, &AuthError{Peer: h.peer, Err: closeSentinel(err), Remote: true, Detail: "reading " + want + ": " + err.Error()}
		}
		return nil, &AuthError{Peer: h.peer, Err: err, Detail: "reading " + want}
	}
	h.buf = b
	f, err := decodeAuthFrame(b)
	if err != nil {
		return nil, h.fail(ErrBadMessage, "reading %s: %v", want, err)
	}
	if r := f.GetResult(); r != nil && !r.GetOk() {
		err := rejectSentinel(r.GetReason())
		detail := truncateDetail(r.GetDetail())
		if err == ErrKeyMismatch {
			detail += "; " + h.rejectedKeyAdvice()
		}
		return nil, &AuthError{Peer: h.peer, Err: err, Remote: true, Detail: detail}
	}
	if got := authFrameKind(f); got != want {
		return nil, h.fail(ErrBadMessage, "got %s, want %s", got, want)
	}
	return f, nil
}

// checkHello judges the peer's hello: name, version, and the trusted key.
func (h *handshake) checkHello(p *caskpb.AuthHello) error {
	name := p.GetNode()
	h.peer = name
	h.peerKey = ed25519.PublicKey(bytes.Clone(p.GetPublicKey()))
	h.peerEphemeral = p.GetEphemeral()
	switch {
	case name == h.a.cfg.Name:
		return h.fail(ErrWrongPeer, "peer claims this node's own name")
	case h.expected != "" && name != h.expected:
		h.peer = h.expected
		return h.fail(ErrWrongPeer, "dialed %s but the peer is %s", h.expected, name)
	case h.role == transport.RoleAcceptor && p.GetToNode() != "" && p.GetToNode() != h.a.cfg.Name:
		return h.fail(ErrWrongPeer, "peer wants %s, this is %s", p.GetToNode(), h.a.cfg.Name)
	}
	v := min(p.GetMaxVersion(), uint32(MaxVersion))
	if v < max(p.GetMinVersion(), uint32(MinVersion)) {
		return h.fail(ErrVersion, "peer speaks %d..%d, this node %d..%d",
			p.GetMinVersion(), p.GetMaxVersion(), MinVersion, MaxVersion)
	}
	h.version = v
	pinned, ok, err := h.a.cfg.Keys.TrustedKey(name)
	switch {
	case err != nil:
		return &AuthError{Peer: name, Err: err}
	case ok && !bytes.Equal(pinned, h.peerKey):
		return h.keyChanged(pinned)
	case ok:
		h.trusted = true
	case h.a.cfg.Trust == TrustStrict && h.peerEphemeral:
		return h.fail(ErrUntrustedKey, "no trusted key for %s in strict mode, and it presents an ephemeral key %s (it has no DataDir): give it a DataDir and trust its keys/node.pub", name, KeyString(h.peerKey))
	case h.a.cfg.Trust == TrustStrict:
		return h.fail(ErrUntrustedKey, "no trusted key for %s (presented %s) in strict mode", name, KeyString(h.peerKey))
	}
	return nil
}

// keyChanged is the refusal of a peer whose name is pinned to another key:
// its key was replaced, it came back without its DataDir (an ephemeral
// key where a persistent one was pinned: a downgrade is a key change), or
// it is an impostor. The error says what the operator can do.
func (h *handshake) keyChanged(pinned ed25519.PublicKey) error {
	where := "pinned in memory"
	if f := h.a.cfg.Keys.TrustedKeyPath(h.peer); f != "" {
		where = "pinned in " + f
	}
	fix := fmt.Sprintf("if %s's identity changed on purpose, call Node.UntrustPeer(%q) on this node (or TrustPeer with its new key)", h.peer, h.peer)
	if f := h.a.cfg.Keys.TrustedKeyPath(h.peer); f != "" {
		fix += " or delete " + f
	}
	if h.peerEphemeral {
		return h.fail(ErrKeyMismatch, "%s presents an ephemeral key %s (it runs without a DataDir), but this node trusts its persistent key %s, %s: restart %s with its DataDir; %s",
			h.peer, KeyString(h.peerKey), KeyString(pinned), where, h.peer, fix)
	}
	return h.fail(ErrKeyMismatch, "presented %s, trusted %s, %s: restore %s's DataDir (its keys/node.key) if it was lost or replaced; %s",
		KeyString(h.peerKey), KeyString(pinned), where, h.peer, fix)
}

// rejectedKeyAdvice tells the operator of a node that a peer refused for
// ErrKeyMismatch (the peer pinned another key for this node's name) what
// to do, naming this node's key file.
func (h *handshake) rejectedKeyAdvice() string {
	me, peer := h.a.cfg.Name, h.peer
	if peer == "" {
		peer = "the peer"
	}
	untrust := fmt.Sprintf("or, if this node's identity changed on purpose, have %s's operator call Node.UntrustPeer(%q) there", peer, me)
	if f := h.a.cfg.Keys.NodeKeyPath(); f != "" {
		return fmt.Sprintf("this node's key is %s: if that file was replaced, restore it from the DataDir it came from, %s", f, untrust)
	}
	if h.a.cfg.Keys.Ephemeral() {
		return fmt.Sprintf("this node runs without a DataDir (an ephemeral key) and %s pinned a persistent key for %s: start it with its DataDir, %s", peer, me, untrust)
	}
	return fmt.Sprintf("this node's key is not the one %s pinned for %s: use that key, %s", peer, me, untrust)
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
	peerRole := transport.RoleAcceptor
	if h.role == transport.RoleAcceptor {
		peerRole = transport.RoleDialer
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

// trustPeer admits the peer's proven key. A key already trusted passes.
// A name new to this node is a first contact: it takes a token from the
// first-contact bucket and, in TOFU mode, is recorded if the store holds
// fewer than MaxTrustedKeys keys; otherwise it is refused with
// ErrFirstContactLimit. It runs only after every other check passed, the
// cluster secret included, so a refused peer never costs a token or a
// pin. A concurrent handshake may have recorded another key for the same
// name first: then this one is a mismatch.
//
// An ephemeral peer (its hello says its key lives only for this run) is a
// first contact at every connection: it takes a token and is admitted
// without a pin, so its next run may present another key. A pin recorded
// for its name meanwhile (the name came back persistent) makes it a
// mismatch.
func (h *handshake) trustPeer() error {
	if h.trusted {
		return nil
	}
	if !h.a.firstContact.take(h.a.cfg.Now()) {
		return h.fail(ErrFirstContactLimit, "more than %d new peers at once or %g per second",
			h.a.cfg.FirstContactBurst, h.a.cfg.FirstContactRate)
	}
	if h.peerEphemeral {
		pinned, ok, err := h.a.cfg.Keys.TrustedKey(h.peer)
		switch {
		case err != nil:
			h.a.firstContact.giveBack()
			return &AuthError{Peer: h.peer, Err: err}
		case ok && !bytes.Equal(pinned, h.peerKey):
			return h.keyChanged(pinned)
		}
		h.trusted = true
		return nil
	}
	got, recorded, err := h.a.cfg.Keys.trustFirst(h.peer, h.peerKey, h.a.cfg.MaxTrustedKeys)
	if errors.Is(err, errTrustStoreFull) {
		h.a.firstContact.giveBack()
		return h.fail(ErrFirstContactLimit, "%d trusted keys held, the most trust on first use records", h.a.cfg.MaxTrustedKeys)
	}
	if err != nil {
		h.a.firstContact.giveBack()
		return &AuthError{Peer: h.peer, Err: err}
	}
	if !bytes.Equal(got, h.peerKey) {
		return h.fail(ErrKeyMismatch, "presented %s, trusted %s", KeyString(h.peerKey), KeyString(got))
	}
	if recorded {
		h.a.log.Info("identity: trusted peer key on first use", "peer", h.peer, "key", KeyString(h.peerKey))
	}
	h.trusted = true
	return nil
}

func (h *handshake) logAuthenticated() {
	h.c.Logger().Debug("identity: peer authenticated", "peer", h.peer, "key", KeyString(h.peerKey))
}

// reject tells the peer why it was refused, then waits (bounded by
// RejectGrace and ctx) for the peer to close the connection after
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
	b, _ := appendAuthFrames(nil, &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Result{Result: &caskpb.AuthResult{
		Reason: rejectReason(ae.Err), Detail: truncateDetail(detail),
	}}})
	_ = h.s.SetWriteDeadline(time.Now().Add(RejectGrace))
	defer h.s.SetWriteDeadline(time.Time{})
	if _, err := h.s.Write(b); err != nil {
		return
	}
	_ = h.s.Close()
	grace := RejectGrace
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

// isAuthClose reports an error caused by the peer closing the connection
// with CodeAuthFailed: it rejected this node without (or before we read)
// a REJECT frame.
func isAuthClose(err error) bool {
	var ce *transport.CloseError
	return errors.As(err, &ce) && ce.Remote && ce.Code == transport.CodeAuthFailed
}

// closeSentinel returns the reject sentinel a CodeAuthFailed close names
// in its reason (the peer's transport closes with its Authenticate
// error's text, which holds the sentinel's), or ErrPeerRejected.
func closeSentinel(err error) error {
	var ce *transport.CloseError
	if errors.As(err, &ce) {
		for _, r := range rejectReasons {
			if strings.Contains(ce.Reason, r.sentinel.Error()) {
				return r.sentinel
			}
		}
	}
	return ErrPeerRejected
}

// signedTranscript is what a response signs (docs/security.md): a context
// string, the version, the signer's role, the challenge (nonce and
// timestamp), the signer's and the verifier's names and keys, and the
// TLS exporter value of this connection.
func signedTranscript(version uint32, signer transport.Role, nonce []byte, stamp uint64, signerName string, signerKey []byte, verifierName string, verifierKey, binding []byte) []byte {
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

func clusterProof(secret []byte, signer transport.Role, binding, signerKey []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(clusterProofContext))
	m.Write([]byte{byte(signer)})
	m.Write(appendField(nil, binding))
	m.Write(appendField(nil, signerKey))
	return m.Sum(nil)
}
