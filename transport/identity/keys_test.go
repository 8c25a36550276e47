package identity

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestKeyStoreCreateAndReload(t *testing.T) {
	dir := t.TempDir()
	ks, err := OpenKeyStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "keys", "node.key")
	pubPath := filepath.Join(dir, "keys", "node.pub")
	for path, want := range map[string]os.FileMode{
		keyPath:                               0o600,
		pubPath:                               0o644,
		filepath.Join(dir, "keys"):            0o700,
		filepath.Join(dir, "keys", "trusted"): 0o700,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^want != 0 {
			t.Errorf("%s has mode %04o, want at most %04o", path, got, want)
		}
	}
	if fi, _ := os.Stat(keyPath); fi.Mode().Perm() != 0o600 {
		t.Errorf("node.key mode %04o, want 0600", fi.Mode().Perm())
	}
	pub, _ := os.ReadFile(pubPath)
	if !ks.PublicKey().Equal(ed25519.PublicKey(pub)) {
		t.Fatal("node.pub is not the raw public key")
	}
	again, err := OpenKeyStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.PublicKey().Equal(ks.PublicKey()) {
		t.Fatal("reopening changed the identity")
	}
	// A missing node.pub is rewritten from node.key.
	if err := os.Remove(pubPath); err != nil {
		t.Fatal(err)
	}
	if again, err = OpenKeyStore(dir); err != nil || !again.PublicKey().Equal(ks.PublicKey()) {
		t.Fatalf("reopen without node.pub: %v", err)
	}
	if pub, _ := os.ReadFile(pubPath); !ks.PublicKey().Equal(ed25519.PublicKey(pub)) {
		t.Fatal("node.pub not rewritten")
	}
	// Ephemeral: a fresh key every time.
	e1, _ := OpenKeyStore("")
	e2, _ := OpenKeyStore("")
	if e1.PublicKey().Equal(e2.PublicKey()) || e1.Dir() != "" {
		t.Fatal("ephemeral key stores share a key")
	}
}

func TestKeyStoreRefusesBadKeyFiles(t *testing.T) {
	setup := func(t *testing.T) (dir, keyPath, pubPath string) {
		dir = t.TempDir()
		if _, err := OpenKeyStore(dir); err != nil {
			t.Fatal(err)
		}
		return dir, filepath.Join(dir, "keys", "node.key"), filepath.Join(dir, "keys", "node.pub")
	}
	t.Run("keypair mismatch", func(t *testing.T) {
		dir, _, pubPath := setup(t)
		if err := os.WriteFile(pubPath, testKeys("other@host").PublicKey(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyStore(dir); !errors.Is(err, ErrKeyPairMismatch) {
			t.Fatalf("OpenKeyStore = %v, want ErrKeyPairMismatch", err)
		}
	})
	t.Run("truncated public key", func(t *testing.T) {
		dir, _, pubPath := setup(t)
		if err := os.WriteFile(pubPath, []byte{1, 2, 3}, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyStore(dir); !errors.Is(err, ErrKeyPairMismatch) {
			t.Fatalf("OpenKeyStore = %v, want ErrKeyPairMismatch", err)
		}
	})
	t.Run("private key readable by others", func(t *testing.T) {
		dir, keyPath, _ := setup(t)
		if err := os.Chmod(keyPath, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyStore(dir); !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("OpenKeyStore = %v, want ErrInsecureKeyFile", err)
		}
	})
	t.Run("public key without private key", func(t *testing.T) {
		dir, keyPath, _ := setup(t)
		if err := os.Remove(keyPath); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyStore(dir); err == nil {
			t.Fatal("OpenKeyStore created a new identity next to an old node.pub")
		}
	})
	t.Run("garbage private key", func(t *testing.T) {
		dir, keyPath, _ := setup(t)
		if err := os.WriteFile(keyPath, []byte("not a key"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenKeyStore(dir); err == nil {
			t.Fatal("OpenKeyStore accepted a garbage node.key")
		}
	})
}

func TestKeyStoreTrust(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		name := "memory"
		if persistent {
			name = "datadir"
		}
		t.Run(name, func(t *testing.T) {
			dir := ""
			if persistent {
				dir = t.TempDir()
			}
			ks, err := OpenKeyStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			k1, k2 := testKeys("1").PublicKey(), testKeys("2").PublicKey()
			if _, ok, err := ks.TrustedKey("b@host"); ok || err != nil {
				t.Fatalf("fresh store trusts b: %v %v", ok, err)
			}
			if got, rec, err := ks.trustFirst("b@host", k1, 10); err != nil || !rec || !got.Equal(k1) {
				t.Fatalf("trustFirst: %v %v %v", got, rec, err)
			}
			if got, rec, err := ks.trustFirst("b@host", k2, 10); err != nil || rec || !got.Equal(k1) {
				t.Fatalf("trustFirst over a pin: %v %v %v (the first key must stay)", got, rec, err)
			}
			if err := ks.Trust("b@host", k2); err != nil {
				t.Fatal(err)
			}
			if got, ok, _ := ks.TrustedKey("b@host"); !ok || !got.Equal(k2) {
				t.Fatal("Trust did not re-pin")
			}
			if persistent {
				raw, err := os.ReadFile(filepath.Join(dir, "keys", "trusted", "b@host.pub"))
				if err != nil || !k2.Equal(ed25519.PublicKey(raw)) {
					t.Fatalf("pin file: %x %v", raw, err)
				}
				// The operator re-pins by replacing the file.
				if err := os.WriteFile(filepath.Join(dir, "keys", "trusted", "b@host.pub"), k1, 0o644); err != nil {
					t.Fatal(err)
				}
				if got, _, _ := ks.TrustedKey("b@host"); !got.Equal(k1) {
					t.Fatal("a replaced pin file is not read")
				}
				if err := os.WriteFile(filepath.Join(dir, "keys", "trusted", "b@host.pub"), []byte("short"), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, _, err := ks.TrustedKey("b@host"); err == nil {
					t.Fatal("a corrupt pin file is accepted")
				}
			}
			if err := ks.Untrust("b@host"); err != nil {
				t.Fatal(err)
			}
			if _, ok, _ := ks.TrustedKey("b@host"); ok {
				t.Fatal("Untrust left the pin")
			}
			for _, bad := range []string{"../x@y", "a/b@h", "a\\b@h", "nohost", "a@b@c", "a\x00@h", "a\n@h", ""} {
				if err := ks.Trust(bad, k1); !errors.Is(err, ErrBadNodeName) {
					t.Errorf("Trust(%q) = %v, want ErrBadNodeName", bad, err)
				}
			}
			if err := ks.Trust("b@host", k1[:31]); err == nil {
				t.Error("Trust accepted a short key")
			}
		})
	}
}

// TestKeyStoreTrustFirstRace: concurrent first contacts with different
// keys for one name record exactly one of them, and every caller learns
// which.
func TestKeyStoreTrustFirstRace(t *testing.T) {
	ks, err := OpenKeyStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	got := make([]ed25519.PublicKey, n)
	recorded := make([]bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := testKeys(string(rune('a' + i))).PublicKey()
			var err error
			got[i], recorded[i], err = ks.trustFirst("b@host", k, 10)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	winners := 0
	for i := range n {
		if recorded[i] {
			winners++
		}
		if !got[i].Equal(got[0]) {
			t.Fatalf("callers disagree on the trusted key")
		}
	}
	if winners != 1 {
		t.Fatalf("%d callers recorded a key, want 1", winners)
	}
	entries, _ := os.ReadDir(filepath.Join(ks.Dir(), "trusted"))
	if len(entries) != 1 {
		t.Fatalf("trusted/ holds %d entries, want 1 (temp files left?)", len(entries))
	}
}
