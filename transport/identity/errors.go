package identity

import (
	"errors"
	"fmt"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// Identity handshake errors. An *AuthError carries one of them (or the I/O
// error that ended the handshake) with the peer's name; when the peer
// rejected this node it also matches ErrPeerRejected, and the sentinel is
// the reason the peer gave.
var (
	// ErrUntrustedKey: strict trust and no trusted key for the peer's name.
	ErrUntrustedKey = errors.New("identity: untrusted key")
	// ErrKeyMismatch: the key trusted for the peer's name is not the key it
	// presented (in both trust modes; re-pin with KeyStore.Trust).
	ErrKeyMismatch = errors.New("identity: key mismatch")
	// ErrBadSignature: the peer's signature does not verify with the key it
	// presented.
	ErrBadSignature = errors.New("identity: bad signature")
	// ErrStaleHandshake: the peer's response came after the freshness
	// window, or answers a challenge other than the one this connection
	// issued (a replay).
	ErrStaleHandshake = errors.New("identity: stale or replayed handshake")
	// ErrChannelBinding: the peer's response was made for another TLS
	// session: something relays the handshake between two connections.
	ErrChannelBinding = errors.New("identity: channel binding mismatch")
	// ErrClusterSecret: the cluster secret proof is missing or wrong.
	ErrClusterSecret = errors.New("identity: cluster secret mismatch")
	// ErrWrongPeer: the peer is not the node this node meant to reach, or
	// claims this node's own name.
	ErrWrongPeer = errors.New("identity: wrong peer")
	// ErrVersion: no identity handshake version in common.
	ErrVersion = errors.New("identity: no common handshake version")
	// ErrBadMessage: a handshake frame was malformed, oversize or out of
	// order.
	ErrBadMessage = errors.New("identity: bad handshake message")
	// ErrFirstContactLimit: the peer's name is new to the node that
	// refused it, and that node admits no more new names now: its
	// first-contact rate (Config.FirstContactRate) or its cap on trusted
	// keys (Config.MaxTrustedKeys) is reached. Retry later, or have the
	// operator trust the key explicitly.
	ErrFirstContactLimit = errors.New("identity: first-contact limit reached")
	// ErrPeerRejected: the peer rejected this node; the AuthError also
	// matches the sentinel for the reason the peer gave, if it gave one.
	ErrPeerRejected = errors.New("identity: peer rejected this node")
)

// Key store errors (OpenKeyStore).
var (
	// ErrKeyPairMismatch means DataDir/keys/node.pub is not the public half
	// of DataDir/keys/node.key. The node refuses to start: one of the files
	// was replaced, and guessing which would change the node's identity.
	ErrKeyPairMismatch = errors.New("identity: node.pub does not match node.key")
	// ErrInsecureKeyFile means DataDir/keys/node.key is readable or
	// writable by group or others; the node refuses to use it.
	ErrInsecureKeyFile = errors.New("identity: private key file is accessible by others")
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
	// with transport.CodeAuthFailed); Err is then the reason it gave.
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

// PeerName is Peer. The transport logs a failed handshake with it (see
// transport.Authenticator).
func (e *AuthError) PeerName() string { return e.Peer }

// Logged is true: Authenticator.Authenticate logs its failures itself,
// rate-limited per peer, so the transport and dist layers need not log
// each attempt (see transport.Authenticator).
func (e *AuthError) Logged() bool { return true }

// rejectReasons maps the sentinels a REJECT can carry to their wire
// reasons.
var rejectReasons = []struct {
	reason   caskpb.AuthRejectReason
	sentinel error
}{
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_BAD_MESSAGE, ErrBadMessage},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_VERSION, ErrVersion},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_WRONG_NODE, ErrWrongPeer},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_UNTRUSTED_KEY, ErrUntrustedKey},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_KEY_MISMATCH, ErrKeyMismatch},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_BAD_SIGNATURE, ErrBadSignature},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_STALE, ErrStaleHandshake},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_CHANNEL_BINDING, ErrChannelBinding},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_CLUSTER_SECRET, ErrClusterSecret},
	{caskpb.AuthRejectReason_AUTH_REJECT_REASON_FIRST_CONTACT_LIMIT, ErrFirstContactLimit},
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
