// Package identity is Cask's peer identity: each node's Ed25519 key pair,
// the keys it trusts for other nodes, admission by cluster secret, and the
// mutual identity handshake that proves both on every connection. It
// plugs into transport through its one seam: Authenticator implements
// transport.Authenticator and is set as transport.Config.Authenticator.
// transport itself knows nothing of keys or names; it keeps QUIC, sockets
// and frames. This package imports transport, never the other way round.
//
// # Node names
//
// ValidateNodeName is the one rule for node names in Cask (name@host, at
// most 255 bytes of UTF-8, no whitespace, control characters, '/' or '\');
// every package that takes a node name checks it with this function, and
// a bad name is an error matching ErrBadNodeName. No valid name can leave
// keys/trusted/ when used as a file name there.
//
// # Keys and trust
//
// A KeyStore holds the node's key pair and the key it trusts per node name
// (a pin). OpenKeyStore keeps them under DataDir/keys/ (node.key, PKCS #8
// PEM, mode 0600; node.pub; trusted/<name>.pub), creating the key pair on
// first use and refusing a mismatched pair (ErrKeyPairMismatch) or a
// private key others can read (ErrInsecureKeyFile); with no DataDir, or
// with NewMemoryKeyStore, the identity and pins live in memory; an
// identity with no DataDir is ephemeral (KeyStore.Ephemeral). Trust is
// TrustOnFirstUse (an unknown key is recorded after its signature
// verifies) or TrustStrict (it is rejected); a key differing from the
// pinned one is rejected in both. A node with an ephemeral identity says
// so in its HELLO, and its peers admit it without pinning it (taking a
// first-contact token each time), so its next run may present another
// key; a name pinned with a persistent key that claims an ephemeral one
// is refused as a key change. ErrKeyMismatch errors say what to do:
// restore the peer's DataDir, or UntrustPeer; they name the pin file
// (KeyStore.TrustedKeyPath) or, on the refused side, the node's own key
// file (KeyStore.NodeKeyPath). Only KeyStore.Trust and Untrust (or an
// operator editing keys/trusted/) change a pin. KeyString formats a key for
// logs.
//
// # Admission and the cost of strangers
//
// A node admits only peers that prove its cluster secret (Config.
// ClusterSecret). DefaultClusterSecret is the secret of a node configured
// with none: CASK_COOKIE (CookieEnv), else the cookie file under
// os.UserConfigDir() (CookiePath), created race-free with a random value
// and mode 0600 by ReadOrCreateCookie; a cookie others may read fails
// with ErrInsecureCookieFile. Names with no trusted key are admitted at
// most Config.FirstContactBurst at once and Config.FirstContactRate per
// second, and trust on first use records at most Config.MaxTrustedKeys
// keys; past either, the peer is refused with ErrFirstContactLimit. Both
// apply only to a peer that passed every other check. Authenticate logs
// each failure itself, at most once per peer per RefusalLogInterval.
//
// # The handshake
//
// Authenticate runs HELLO, CHALLENGE, RESPONSE and RESULT frames
// (caskpb.AuthFrame, at most MaxFrameSize each) on the first bidirectional
// stream of the connection; every signature covers the connection's TLS
// exporter value, so a handshake relayed onto another TLS session fails.
// A cluster secret (Config.ClusterSecret) adds an HMAC proof bound to the
// same value. WithExpectedPeer tells the dialer's handshake which node it
// means to reach. The wire format and threat model are in
// docs/security.md.
//
// The transport calls Authenticate once per connection, after the QUIC
// handshake: for Dial on the dialing goroutine, for an inbound connection
// on a goroutine of its own, so many run at once; one Authenticator serves
// them all, and its only shared state is the KeyStore (whose methods lock
// or use atomic file operations). Authenticate blocks on the network for
// at most the transport's handshake timeout: it returns when its ctx ends,
// and the transport closes the connection then, which ends its stream
// reads. When it rejects the peer it first sends a REJECT with the reason
// and waits at most RejectGrace for the peer to close.
//
// # Errors
//
// A failed handshake is an *AuthError naming the peer; it matches, with
// errors.Is, one of ErrUntrustedKey, ErrKeyMismatch, ErrBadSignature,
// ErrStaleHandshake, ErrChannelBinding, ErrClusterSecret, ErrWrongPeer,
// ErrVersion or ErrBadMessage, plus ErrPeerRejected when the peer refused
// this node (the sentinel is then the peer's reason). transport.Dial
// returns it wrapped, and both sides log it with the peer's name.
package identity
