package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/cask-p2p/cask/transport/internal/atomicfile"
)

const (
	tlsDirName       = "tls"
	certFileName     = "cert.pem"
	keyFileName      = "key.pem"
	certValidity     = 100 * 365 * 24 * time.Hour
	tlsDirMode       = 0o700
	keyFileMode      = 0o600
	certFileMode     = 0o644
	statelessResetIn = "cask stateless reset key v1"
)

// loadOrCreateCertificate returns the node's TLS certificate. With an empty
// dataDir it is generated in memory. Otherwise it is read from
// dataDir/tls/{cert,key}.pem, and generated and written there when both
// files are absent. A half-present or unreadable pair is an error: we never
// silently replace a node's key.
func loadOrCreateCertificate(dataDir string) (tls.Certificate, error) {
	if dataDir == "" {
		certPEM, keyPEM, err := generateCertificate()
		if err != nil {
			return tls.Certificate{}, err
		}
		return tls.X509KeyPair(certPEM, keyPEM)
	}
	dir := filepath.Join(dataDir, tlsDirName)
	certPath := filepath.Join(dir, certFileName)
	keyPath := filepath.Join(dir, keyFileName)

	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("transport: load TLS material from %s: %w", dir, err)
		}
		return cert, nil
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		// First start: create below.
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return tls.Certificate{}, fmt.Errorf("transport: read %s: %w", certPath, certErr)
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return tls.Certificate{}, fmt.Errorf("transport: read %s: %w", keyPath, keyErr)
	default:
		return tls.Certificate{}, fmt.Errorf("transport: %s holds only one of %s and %s; remove it or restore the other", dir, certFileName, keyFileName)
	}

	certPEM, keyPEM, err := generateCertificate()
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, tlsDirMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: create %s: %w", dir, err)
	}
	// Key first: a crash between the two writes leaves only the key, which
	// the next Start reports instead of pairing it with a foreign cert.
	if err := atomicfile.WriteFile(keyPath, keyPEM, keyFileMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: %w", err)
	}
	if err := atomicfile.WriteFile(certPath, certPEM, certFileMode); err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: %w", err)
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// generateCertificate creates a self-signed ECDSA P-256 certificate for the
// server name "cask", PEM encoded.
func generateCertificate() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("transport: generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: serverName},
		DNSNames:              []string{serverName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: encode TLS key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// serverTLSConfig accepts only ALPN "cask/1" and requires no client
// certificate: identity is proven by the Authenticator.
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}
}

// clientTLSConfig skips certificate verification (nodes are self-signed;
// the Authenticator binds the peer's identity to this TLS session through
// the exporter).
func clientTLSConfig() *tls.Config {
	return &tls.Config{
		ServerName:         serverName,
		NextProtos:         []string{ALPN},
		InsecureSkipVerify: true, //nolint:gosec // identity is proven by the Authenticator
		MinVersion:         tls.VersionTLS13,
	}
}

// statelessResetKey derives the QUIC stateless reset key from the node's TLS
// key, so a node restarted with the same DataDir can tell peers it lost
// their connections (they then see ErrPeerClosed at once).
func statelessResetKey(cert tls.Certificate) ([32]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return [32]byte{}, fmt.Errorf("transport: derive stateless reset key: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(statelessResetIn))
	h.Write(keyDER)
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k, nil
}
