package actors

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"

	"github.com/cask-p2p/cask/transport/identity"
)

// TrustMode says what a node does with a peer key it holds no trusted key
// for (see Config.TrustMode and docs/security.md).
type TrustMode = identity.TrustMode

const (
	// TrustOnFirstUse (the default) records the first key a node name
	// presents; later connections must present the same key.
	TrustOnFirstUse = identity.TrustOnFirstUse
	// TrustStrict rejects every peer whose key was not trusted beforehand
	// with Node.TrustPeer or a file DataDir/keys/trusted/<name>.pub.
	TrustStrict = identity.TrustStrict
)

// newAuthenticator loads (or creates) the node's identity from
// DataDir/keys/, or makes an ephemeral one, resolves the cluster secret
// (Config.ClusterSecret, else identity.DefaultClusterSecret, unless
// OpenCluster), and builds the Authenticator every connection of the node
// runs.
func newAuthenticator(cfg Config, logger *slog.Logger) (*identity.Authenticator, error) {
	secret := cfg.ClusterSecret
	switch {
	case cfg.OpenCluster:
		logger.Warn("open cluster: admitting any node that can reach this one (Config.OpenCluster)", "trust", cfg.TrustMode)
	case len(secret) == 0:
		var src identity.CookieSource
		var err error
		secret, src, err = identity.DefaultClusterSecret()
		if err != nil {
			return nil, fmt.Errorf("cluster secret: %w", err)
		}
		if src.Created {
			logger.Info("created the cluster cookie; give other machines' nodes its contents (file or CASK_COOKIE)", "path", src.Path)
		}
	}
	keys, err := identity.OpenKeyStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	return identity.New(identity.Config{
		Name:              cfg.Name,
		Keys:              keys,
		Trust:             cfg.TrustMode,
		ClusterSecret:     secret,
		FirstContactRate:  cfg.FirstContactRate,
		FirstContactBurst: cfg.FirstContactBurst,
		MaxTrustedKeys:    cfg.MaxTrustedKeys,
		Logger:            logger,
	})
}

// PublicKey is this node's Ed25519 public key: the contents of
// DataDir/keys/node.pub, which peers trust for this node's name.
func (n *Node) PublicKey() ed25519.PublicKey { return n.keys.PublicKey() }

// TrustPeer makes key the trusted key for peer, replacing any earlier one
// (the explicit re-pin after a peer's key changed; with a DataDir it
// writes DataDir/keys/trusted/<peer>.pub). New connections to and from
// peer must present key; channels already up are not affected.
func (n *Node) TrustPeer(peer string, key ed25519.PublicKey) error {
	if err := n.keys.Trust(peer, key); err != nil {
		return err
	}
	n.log.Info("trusted peer key", "peer", peer, "key", identity.KeyString(key))
	return nil
}

// UntrustPeer forgets the trusted key for peer. In TrustOnFirstUse mode
// the next key peer presents is trusted (or, if it is ephemeral,
// admitted without a pin); in TrustStrict mode peer is rejected until
// TrustPeer. It is the way to accept a peer whose persistent key changed
// on purpose, which the handshake refuses with identity.ErrKeyMismatch.
func (n *Node) UntrustPeer(peer string) error {
	if err := n.keys.Untrust(peer); err != nil {
		return err
	}
	n.log.Info("untrusted peer key", "peer", peer)
	return nil
}

// TrustedKey returns the key trusted for peer, if any.
func (n *Node) TrustedKey(peer string) (ed25519.PublicKey, bool, error) {
	return n.keys.TrustedKey(peer)
}
