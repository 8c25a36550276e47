package identity

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// ephemeralKeys is a fresh identity for one run, as a node without a
// DataDir has.
func ephemeralKeys(t *testing.T) *KeyStore {
	t.Helper()
	ks, err := OpenKeyStore("")
	if err != nil {
		t.Fatal(err)
	}
	if !ks.Ephemeral() {
		t.Fatal("OpenKeyStore(\"\") is not ephemeral")
	}
	return ks
}

func ephemeralNode(t *testing.T, name string) *authNode {
	t.Helper()
	return startAuthNode(t, name, func(c *Config) { c.Keys = ephemeralKeys(t) })
}

// TestIdentityEphemeralNotPinned: a node without a DataDir says so in its
// hello; its peers admit it without pinning, in either role, so a later
// run of the same name with another key is admitted too. It still pins
// the persistent peers it meets.
func TestIdentityEphemeralNotPinned(t *testing.T) {
	if testKeys("x@host").Ephemeral() {
		t.Fatal("a KeyStore made from a given key is ephemeral")
	}
	b := startAuthNode(t, "b@host", nil)
	for run := range 3 {
		a := ephemeralNode(t, "a@host")
		if _, _, err := dialAuth(t, a, b); err != nil {
			t.Fatalf("run %d of ephemeral a → b: %v", run, err)
		}
		if _, _, err := dialAuth(t, b, a); err != nil {
			t.Fatalf("b → run %d of ephemeral a: %v", run, err)
		}
		if _, pinned, _ := b.auth.Keys().TrustedKey("a@host"); pinned {
			t.Fatalf("run %d: b pinned the ephemeral a", run)
		}
		if k, pinned, _ := a.auth.Keys().TrustedKey("b@host"); !pinned || !k.Equal(b.auth.Keys().PublicKey()) {
			t.Fatalf("run %d: ephemeral a did not pin the persistent b", run)
		}
	}
}

// TestIdentityEphemeralDowngradeRefused: a name pinned with a persistent
// key that comes back ephemeral is refused as a key change, whichever
// side dials, with advice naming the DataDir and UntrustPeer.
func TestIdentityEphemeralDowngradeRefused(t *testing.T) {
	b := startAuthNode(t, "b@host", nil)
	c := startAuthNode(t, "c@host", nil)
	if _, _, err := dialAuth(t, c, b); err != nil {
		t.Fatal(err)
	}
	c2 := ephemeralNode(t, "c@host")
	_, _, err := dialAuth(t, c2, b)
	if !errors.Is(err, ErrKeyMismatch) || !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("ephemeral c → b that pinned c: %v, want ErrKeyMismatch from b", err)
	}
	if !strings.Contains(err.Error(), "without a DataDir") || !strings.Contains(err.Error(), `UntrustPeer("c@host")`) {
		t.Errorf("refused side's error gives no advice: %v", err)
	}
	_, _, err = dialAuth(t, b, c2)
	if !errors.Is(err, ErrKeyMismatch) || errors.Is(err, ErrPeerRejected) {
		t.Fatalf("b → ephemeral c: %v, want a local ErrKeyMismatch", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "ephemeral") || !strings.Contains(msg, "with its DataDir") ||
		!strings.Contains(msg, `UntrustPeer("c@host")`) {
		t.Errorf("refusing side's error gives no advice: %v", err)
	}
	if k, _, _ := b.auth.Keys().TrustedKey("c@host"); !k.Equal(c.auth.Keys().PublicKey()) {
		t.Fatal("the downgrade replaced the pin")
	}
	// UntrustPeer is the operator's way out.
	if err := b.auth.Keys().Untrust("c@host"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialAuth(t, c2, b); err != nil {
		t.Fatalf("ephemeral c → b once b untrusted c: %v", err)
	}
}

// TestIdentityEphemeralThenPersistentPinned: a name first seen ephemeral
// is pinned when it comes back with a persistent key.
func TestIdentityEphemeralThenPersistentPinned(t *testing.T) {
	b := startAuthNode(t, "b@host", nil)
	if _, _, err := dialAuth(t, ephemeralNode(t, "d@host"), b); err != nil {
		t.Fatal(err)
	}
	d := startAuthNode(t, "d@host", nil)
	if _, _, err := dialAuth(t, d, b); err != nil {
		t.Fatalf("persistent d after an ephemeral one: %v", err)
	}
	if k, pinned, _ := b.auth.Keys().TrustedKey("d@host"); !pinned || !k.Equal(d.auth.Keys().PublicKey()) {
		t.Fatal("the persistent d was not pinned")
	}
}

// TestIdentityEphemeralStrictRefused: strict mode admits only keys trusted
// beforehand, so an ephemeral peer is refused, with a reason that says
// why.
func TestIdentityEphemeralStrictRefused(t *testing.T) {
	b := startAuthNode(t, "b@host", func(c *Config) { c.Trust = TrustStrict })
	_, _, err := dialAuth(t, ephemeralNode(t, "e@host"), b)
	if !errors.Is(err, ErrUntrustedKey) {
		t.Fatalf("ephemeral e → strict b: %v, want ErrUntrustedKey", err)
	}
	b.logs.waitLog(t, "identity: refused peer", "peer=e@host", "ephemeral key")
}

// TestIdentityEphemeralTakesFirstContactToken: an ephemeral peer is a
// first contact at every connection (nothing is pinned), so the
// first-contact bucket bounds its connections as it bounds new names.
func TestIdentityEphemeralTakesFirstContactToken(t *testing.T) {
	clock := &fakeClock{base: time.Now()}
	b := startAuthNode(t, "b@host", func(c *Config) {
		c.Now = clock.now
		c.FirstContactBurst = 2
		c.FirstContactRate = 1
	})
	a := ephemeralNode(t, "a@host")
	for i := range 2 {
		if _, _, err := dialAuth(t, a, b); err != nil {
			t.Fatalf("connection %d within the burst: %v", i, err)
		}
	}
	if _, _, err := dialAuth(t, a, b); !errors.Is(err, ErrFirstContactLimit) {
		t.Fatalf("3rd connection at once: %v, want ErrFirstContactLimit", err)
	}
	clock.advance(time.Second)
	if _, _, err := dialAuth(t, a, b); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

// TestIdentityKeyChangeLoggedOncePerMinute: a persistent peer whose key
// changed is refused at every attempt, and each side logs it once per
// peer per RefusalLogInterval, the next line counting the attempts in
// between. The refusing side's line names the pin file.
func TestIdentityKeyChangeLoggedOncePerMinute(t *testing.T) {
	clock := &fakeClock{base: time.Now()}
	keys, err := OpenKeyStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthNode(t, "b@host", func(c *Config) { c.Keys, c.Now = keys, clock.now })
	c := startAuthNode(t, "c@host", func(cfg *Config) { cfg.Now = clock.now })
	if err := keys.Trust("c@host", testKeys("old c").PublicKey()); err != nil {
		t.Fatal(err)
	}
	const attempts = 5
	for i := range attempts {
		if _, _, err := dialAuth(t, c, b); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("attempt %d: %v, want ErrKeyMismatch", i, err)
		}
	}
	// The acceptor finishes (and logs) after the dialer read its REJECT.
	deadline := time.Now().Add(5 * time.Second)
	for b.logs.count("transport: authentication failed", "peer=c@host") < attempts && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	b.logs.waitLog(t, "identity: refused peer", "peer=c@host", keys.TrustedKeyPath("c@host"), "UntrustPeer")
	c.logs.waitLog(t, "identity: peer refused this node", "peer=b@host", "UntrustPeer")
	if n := b.logs.count("identity: refused peer", "peer=c@host"); n != 1 {
		t.Fatalf("b logged %d refusals of c in %d attempts, want 1", n, attempts)
	}
	if n := c.logs.count("identity: peer refused this node", "peer=b@host"); n != 1 {
		t.Fatalf("c logged %d refusals by b in %d attempts, want 1", n, attempts)
	}
	clock.advance(RefusalLogInterval)
	if _, _, err := dialAuth(t, c, b); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("after a minute: %v, want ErrKeyMismatch", err)
	}
	b.logs.waitLog(t, "identity: refused peer", "peer=c@host", "suppressed=4")
	c.logs.waitLog(t, "identity: peer refused this node", "peer=b@host", "suppressed=4")
}
