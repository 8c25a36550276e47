package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/cask-p2p/cask/transport/internal/atomicfile"
)

// Key files under DataDir (docs/security.md).
const (
	keysDirName        = "keys"
	trustedDirName     = "trusted"
	nodeKeyFileName    = "node.key"
	nodePubFileName    = "node.pub"
	trustedKeySuffix   = ".pub"
	keysDirMode        = 0o700
	nodeKeyFileMode    = 0o600
	publicKeyFileMode  = 0o644
	maxKeyFileSize     = 4 << 10
	nodeKeyPEMType     = "PRIVATE KEY"
	trustedTempPattern = ".tmp-"
)

// KeyStore holds a node's Ed25519 key pair and the public keys it trusts
// for other nodes (pins). A KeyStore opened on a DataDir keeps them in
// DataDir/keys/: node.key (PKCS #8 PEM, mode 0600), node.pub (the raw 32
// byte public key) and trusted/<node-name>.pub (raw 32-byte keys). Trusted
// keys are read from disk at every lookup, so an operator may re-pin a
// peer by replacing its file while the node runs. An in-memory KeyStore
// (NewMemoryKeyStore, or OpenKeyStore with an empty dir) keeps pins in
// memory only.
//
// The identity of a KeyStore opened with no DataDir is ephemeral: its key
// was made for this run and is kept nowhere, so the next run of the node
// has another. The handshake says so, and peers do not pin an ephemeral
// key (Ephemeral, docs/security.md).
//
// All methods are safe for concurrent use.
type KeyStore struct {
	dir       string // DataDir/keys, or "" in memory
	priv      ed25519.PrivateKey
	pub       ed25519.PublicKey
	ephemeral bool // the key was generated for this run (no DataDir)

	mu      sync.Mutex                   // guards trusted; serializes pin writes
	trusted map[string]ed25519.PublicKey // in-memory pins (dir == "")
}

// OpenKeyStore loads the node's key pair from dataDir/keys/, creating it on
// first use. With an empty dataDir it returns an in-memory KeyStore with
// a fresh key pair: an ephemeral identity (Ephemeral reports true).
//
// A node.pub that is not the public half of node.key fails with
// ErrKeyPairMismatch, a node.key readable by others with
// ErrInsecureKeyFile, and a node.pub without node.key is an error too: a
// node's identity is never replaced silently. A missing node.pub next to
// a valid node.key is rewritten from it.
func OpenKeyStore(dataDir string) (*KeyStore, error) {
	if dataDir == "" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("identity: generate node key: %w", err)
		}
		ks := NewMemoryKeyStore(priv)
		ks.ephemeral = true
		return ks, nil
	}
	dir := filepath.Join(dataDir, keysDirName)
	if err := os.MkdirAll(filepath.Join(dir, trustedDirName), keysDirMode); err != nil {
		return nil, fmt.Errorf("identity: create %s: %w", dir, err)
	}
	keyPath := filepath.Join(dir, nodeKeyFileName)
	pubPath := filepath.Join(dir, nodePubFileName)

	keyPEM, keyErr := readSmallFile(keyPath)
	pubRaw, pubErr := readSmallFile(pubPath)
	switch {
	case keyErr == nil:
		// Load below.
	case errors.Is(keyErr, fs.ErrNotExist) && errors.Is(pubErr, fs.ErrNotExist):
		return createNodeKey(dir)
	case errors.Is(keyErr, fs.ErrNotExist) && pubErr == nil:
		return nil, fmt.Errorf("identity: %s exists but %s does not; restore the private key or remove both to create a new identity", pubPath, keyPath)
	default:
		return nil, fmt.Errorf("identity: read %s: %w", keyPath, keyErr)
	}
	if err := checkKeyFileMode(keyPath); err != nil {
		return nil, err
	}
	priv, err := parseNodeKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", keyPath, err)
	}
	derived := priv.Public().(ed25519.PublicKey)
	switch {
	case pubErr == nil:
		if !bytes.Equal(pubRaw, derived) {
			return nil, fmt.Errorf("%w: %s holds %s, but %s derives %s", ErrKeyPairMismatch,
				pubPath, describeKeyBytes(pubRaw), keyPath, KeyString(derived))
		}
	case errors.Is(pubErr, fs.ErrNotExist):
		if err := atomicfile.WriteFile(pubPath, derived, publicKeyFileMode); err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
	default:
		return nil, fmt.Errorf("identity: read %s: %w", pubPath, pubErr)
	}
	ks := NewMemoryKeyStore(priv)
	ks.dir = dir
	ks.trusted = nil
	return ks, nil
}

// NewMemoryKeyStore returns a KeyStore for priv that keeps trusted keys in
// memory only. priv must be a valid ed25519.PrivateKey. The caller owns
// priv and may use it again, so the identity is not ephemeral: peers pin
// it as they pin a key kept in a DataDir.
func NewMemoryKeyStore(priv ed25519.PrivateKey) *KeyStore {
	return &KeyStore{
		priv:    priv,
		pub:     priv.Public().(ed25519.PublicKey),
		trusted: make(map[string]ed25519.PublicKey),
	}
}

// createNodeKey generates a key pair and writes node.key (mode 0600 set
// before any byte is written), then node.pub.
func createNodeKey(dir string) (*KeyStore, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("identity: encode node key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: nodeKeyPEMType, Bytes: der})
	// Key first: a crash between the writes leaves node.key alone, from
	// which the next start rewrites node.pub.
	if err := atomicfile.WriteFile(filepath.Join(dir, nodeKeyFileName), keyPEM, nodeKeyFileMode); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, nodePubFileName), pub, publicKeyFileMode); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	ks := NewMemoryKeyStore(priv)
	ks.dir = dir
	ks.trusted = nil
	return ks, nil
}

func parseNodeKey(keyPEM []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(keyPEM)
	if block == nil || block.Type != nodeKeyPEMType || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not a single PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS #8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want an Ed25519 key", k)
	}
	return priv, nil
}

// checkKeyFileMode refuses a private key that group or others may access
// (not checked on Windows, whose permissions Go does not map to modes).
func checkKeyFileMode(path string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("identity: stat %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrInsecureKeyFile, path, perm, path)
	}
	return nil
}

// readSmallFile reads at most maxKeyFileSize bytes; a larger file is an
// error (no key file is that big).
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFileSize)
	}
	return b, nil
}

// PublicKey is this node's public key.
func (s *KeyStore) PublicKey() ed25519.PublicKey { return s.pub }

// Dir is DataDir/keys, or "" for an in-memory KeyStore.
func (s *KeyStore) Dir() string { return s.dir }

// Ephemeral reports an identity made for this run only (OpenKeyStore with
// no DataDir). The handshake tells peers, which then admit the key
// without pinning it: the node's next run will present another.
func (s *KeyStore) Ephemeral() bool { return s.ephemeral }

// NodeKeyPath is the file holding the node's private key,
// DataDir/keys/node.key, or "" for an in-memory KeyStore.
func (s *KeyStore) NodeKeyPath() string {
	if s.dir == "" {
		return ""
	}
	return filepath.Join(s.dir, nodeKeyFileName)
}

// TrustedKeyPath is the file that pins node's key,
// DataDir/keys/trusted/<node>.pub, or "" for an in-memory KeyStore or a
// name ValidateNodeName refuses.
func (s *KeyStore) TrustedKeyPath(node string) string {
	if s.dir == "" || ValidateNodeName(node) != nil {
		return ""
	}
	return s.trustedPath(node)
}

// sign signs msg with the node's private key.
func (s *KeyStore) sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

// TrustedKey returns the key trusted for node, if any. With a DataDir it
// reads keys/trusted/<node>.pub; a file that is not exactly 32 bytes is an
// error.
func (s *KeyStore) TrustedKey(node string) (ed25519.PublicKey, bool, error) {
	if err := ValidateNodeName(node); err != nil {
		return nil, false, err
	}
	if s.dir == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		k, ok := s.trusted[node]
		return k, ok, nil
	}
	return s.readTrusted(node)
}

// readTrusted reads keys/trusted/<node>.pub.
func (s *KeyStore) readTrusted(node string) (ed25519.PublicKey, bool, error) {
	path := s.trustedPath(node)
	b, err := readSmallFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("identity: read trusted key %s: %w", path, err)
	case len(b) != ed25519.PublicKeySize:
		return nil, false, fmt.Errorf("identity: trusted key %s is %d bytes, want a raw %d-byte Ed25519 key", path, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), true, nil
}

// Trust makes key the trusted key for node, replacing any earlier one.
// This is the explicit re-pin: the trust check never replaces a pin by
// itself. Connections already authenticated are not affected.
func (s *KeyStore) Trust(node string, key ed25519.PublicKey) error {
	if err := ValidateNodeName(node); err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("identity: trust %s: key is %d bytes, want %d", node, len(key), ed25519.PublicKeySize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		s.trusted[node] = bytes.Clone(key)
		return nil
	}
	if err := atomicfile.WriteFile(s.trustedPath(node), key, publicKeyFileMode); err != nil {
		return fmt.Errorf("identity: trust %s: %w", node, err)
	}
	return nil
}

// Untrust removes the trusted key for node (no error when there is none).
// In TrustOnFirstUse mode the next key node presents is trusted again.
func (s *KeyStore) Untrust(node string) error {
	if err := ValidateNodeName(node); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		delete(s.trusted, node)
		return nil
	}
	if err := os.Remove(s.trustedPath(node)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("identity: untrust %s: %w", node, err)
	}
	return nil
}

// errTrustStoreFull: trustFirst found the limit of keys trusted already.
var errTrustStoreFull = errors.New("identity: trust store full")

// trustFirst records key for node unless a key is already trusted for it
// (create-if-absent, atomic against concurrent handshakes and other
// processes). It returns the key now trusted for node and whether this
// call recorded it. When the store holds limit trusted keys or more and none
// for node, it records nothing and fails with errTrustStoreFull.
func (s *KeyStore) trustFirst(node string, key ed25519.PublicKey, limit int) (ed25519.PublicKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dir == "" {
		if k, ok := s.trusted[node]; ok {
			return k, false, nil
		}
		if len(s.trusted) >= limit {
			return nil, false, errTrustStoreFull
		}
		s.trusted[node] = bytes.Clone(key)
		return key, true, nil
	}
	if k, ok, err := s.readTrusted(node); err != nil || ok {
		return k, false, err
	}
	if n, err := s.countTrusted(); err != nil {
		return nil, false, fmt.Errorf("identity: trust %s: %w", node, err)
	} else if n >= limit {
		return nil, false, errTrustStoreFull
	}
	path := s.trustedPath(node)
	f, err := os.CreateTemp(filepath.Dir(path), "."+node+trustedTempPattern+"*")
	if err != nil {
		return nil, false, fmt.Errorf("identity: trust %s: %w", node, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(publicKeyFileMode)
	if err == nil {
		_, err = f.Write(key)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, false, fmt.Errorf("identity: trust %s: %w", node, err)
	}
	// Link fails if the pin exists: the first key recorded wins.
	if err := os.Link(tmp, path); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("identity: trust %s: %w", node, err)
		}
		k, ok, rerr := s.readTrusted(node)
		if rerr != nil || !ok {
			return nil, false, fmt.Errorf("identity: trust %s: pin appeared but cannot be read: %v", node, rerr)
		}
		return k, false, nil
	}
	return key, true, nil
}

// countTrusted counts the trusted keys in keys/trusted/ (the *.pub files;
// temporary files are not pins).
func (s *KeyStore) countTrusted() (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, trustedDirName))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if name := e.Name(); !strings.HasPrefix(name, ".") && strings.HasSuffix(name, trustedKeySuffix) {
			n++
		}
	}
	return n, nil
}

func (s *KeyStore) trustedPath(node string) string {
	return filepath.Join(s.dir, trustedDirName, node+trustedKeySuffix)
}

// KeyString formats a public key for logs and error messages: standard
// base64 of the raw 32 bytes, as `base64 node.pub` prints it.
func KeyString(key ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(key)
}

func describeKeyBytes(b []byte) string {
	if len(b) != ed25519.PublicKeySize {
		return fmt.Sprintf("%d bytes (want %d)", len(b), ed25519.PublicKeySize)
	}
	return KeyString(b)
}
