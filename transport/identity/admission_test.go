package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCookieCreatedOnceUnderRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "cask", "cookie")
	const n = 16
	var wg sync.WaitGroup
	secrets := make([][]byte, n)
	created := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			secrets[i], created[i], errs[i] = ReadOrCreateCookie(path)
		}()
	}
	close(start)
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("caller %d read %q, caller 0 %q: one cookie must win", i, secrets[i], secrets[0])
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers say they created the cookie, want 1", creators)
	}
	if len(secrets[0]) < 40 {
		t.Fatalf("cookie %q is too short for 32 random bytes", secrets[0])
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Fatalf("%s has mode %04o, want %04o", p, fi.Mode().Perm(), want)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("cookie directory holds %d entries, want the cookie alone (temporary files removed)", len(entries))
	}
	again, made, err := ReadOrCreateCookie(path)
	if err != nil || made || !bytes.Equal(again, secrets[0]) {
		t.Fatalf("second read: %q created=%v err=%v, want the same cookie", again, made, err)
	}
}

func TestCookieRefusesInsecureOrEmptyFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Log("file modes are not checked on Windows; only the empty-file case runs")
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadOrCreateCookie(empty); !errors.Is(err, ErrEmptyCookie) {
		t.Fatalf("empty cookie: %v, want ErrEmptyCookie", err)
	}
	if runtime.GOOS == "windows" {
		return
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadOrCreateCookie(open); !errors.Is(err, ErrInsecureCookieFile) {
		t.Fatalf("group-readable cookie: %v, want ErrInsecureCookieFile", err)
	}
	if err := os.Chmod(open, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, _, err := ReadOrCreateCookie(open); err != nil || string(s) != "secret" {
		t.Fatalf("cookie after chmod 600: %q, %v; want \"secret\" (white space trimmed)", s, err)
	}
}

func TestDefaultClusterSecretSources(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("AppData", filepath.Join(home, "config"))
	t.Setenv(CookieEnv, "from-the-environment")
	s, src, err := DefaultClusterSecret()
	if err != nil || string(s) != "from-the-environment" || !src.Env {
		t.Fatalf("with %s set: %q %+v %v", CookieEnv, s, src, err)
	}
	os.Unsetenv(CookieEnv) // t.Setenv restores it
	s1, src1, err := DefaultClusterSecret()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(home, "config", "cask", "cookie")
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		want = filepath.Join(home, "Library", "Application Support", "cask", "cookie")
	}
	if src1.Path != want || !src1.Created || src1.Env {
		t.Fatalf("first default: source %+v, want %s created", src1, want)
	}
	s2, src2, err := DefaultClusterSecret()
	if err != nil || !bytes.Equal(s1, s2) || src2.Created {
		t.Fatalf("second default: %q %+v %v, want the same cookie, not created", s2, src2, err)
	}
	t.Setenv(CookieEnv, "")
	if _, _, err := DefaultClusterSecret(); !errors.Is(err, ErrEmptyCookie) {
		t.Fatalf("empty %s: %v, want ErrEmptyCookie", CookieEnv, err)
	}
}

func TestLogLimiterOncePerPeerPerInterval(t *testing.T) {
	l := newLogLimiter(time.Minute, 3)
	t0 := time.Now()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if ok, _ := l.allow("a", at(0)); !ok {
		t.Fatal("first line about a must be logged")
	}
	for i := range 5 {
		if ok, _ := l.allow("a", at(time.Duration(i+1)*time.Second)); ok {
			t.Fatalf("line %d about a within the minute was logged", i+2)
		}
	}
	if ok, _ := l.allow("b", at(2*time.Second)); !ok {
		t.Fatal("first line about b must be logged")
	}
	ok, suppressed := l.allow("a", at(time.Minute))
	if !ok || suppressed != 5 {
		t.Fatalf("a after a minute: ok=%v suppressed=%d, want logged with 5 suppressed", ok, suppressed)
	}
	// The table holds 3 peers per interval; the 4th and 5th are dropped
	// and counted, and the next line logged reports them.
	l.allow("c", at(time.Minute))
	if ok, _ := l.allow("d", at(time.Minute+time.Second)); ok {
		t.Fatal("a 4th peer within the interval was logged past the cap")
	}
	if ok, _ := l.allow("e", at(time.Minute+2*time.Second)); ok {
		t.Fatal("a 5th peer within the interval was logged past the cap")
	}
	ok, suppressed = l.allow("d", at(2*time.Minute+3*time.Second))
	if !ok || suppressed != 2 {
		t.Fatalf("d once b and a expired: ok=%v suppressed=%d, want logged with the 2 dropped lines", ok, suppressed)
	}
	if len(l.keys) > 3 {
		t.Fatalf("limiter remembers %d peers, cap 3", len(l.keys))
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Now()
	b := newTokenBucket(2, 3, t0)
	for i := range 3 {
		if !b.take(t0) {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if b.take(t0) {
		t.Fatal("a 4th token at once was given")
	}
	if b.take(t0.Add(400 * time.Millisecond)) {
		t.Fatal("a token after 0.4 s at 2/s was given")
	}
	if !b.take(t0.Add(500 * time.Millisecond)) {
		t.Fatal("no token after 0.5 s at 2/s")
	}
	if got := countTokens(b, t0.Add(time.Hour)); got != 3 {
		t.Fatalf("after an hour %d tokens, want the burst of 3", got)
	}
}

func countTokens(b *tokenBucket, now time.Time) int {
	n := 0
	for b.take(now) {
		n++
	}
	return n
}

// TestIdentityClusterSecretRefusalBothSides: a node with a secret refuses
// one without (whichever dials), both sides get the typed error, and
// repeated attempts are logged once per peer on each side.
func TestIdentityClusterSecretRefusalBothSides(t *testing.T) {
	withSecret := startAuthNode(t, "s@host", func(c *Config) { c.ClusterSecret = []byte("cookie") })
	open := startAuthNode(t, "o@host", nil)

	for i := range 4 {
		_, _, err := dialAuth(t, open, withSecret)
		if !errors.Is(err, ErrClusterSecret) || !errors.Is(err, ErrPeerRejected) {
			t.Fatalf("open → secret, attempt %d: %v, want ErrClusterSecret and ErrPeerRejected", i, err)
		}
	}
	for i := range 4 {
		_, _, err := dialAuth(t, withSecret, open)
		if !errors.Is(err, ErrClusterSecret) || errors.Is(err, ErrPeerRejected) {
			t.Fatalf("secret → open, attempt %d: %v, want ErrClusterSecret raised by the dialer itself", i, err)
		}
	}
	// The side with the secret refused o 8 times; the open side was
	// refused 8 times. Each logs one warning about the other.
	withSecret.logs.waitLog(t, "identity: refused peer", "peer=o@host", "cluster secret")
	open.logs.waitLog(t, "identity: peer refused this node", "peer=s@host", "cluster secret")
	if n := withSecret.logs.count("identity: refused peer", "peer=o@host"); n != 1 {
		t.Fatalf("refusing side logged %d lines about o@host, want 1 (once per minute)", n)
	}
	if n := open.logs.count("identity: peer refused this node", "peer=s@host"); n != 1 {
		t.Fatalf("refused side logged %d lines about s@host, want 1 (once per minute)", n)
	}
}

// count is the number of lines containing every part.
func (l *logRecorder) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func TestIdentityFirstContactRate(t *testing.T) {
	clock := &fakeClock{base: time.Now()}
	b := startAuthNode(t, "b@host", func(c *Config) {
		c.Now = clock.now
		c.FirstContactBurst = 2
		c.FirstContactRate = 1
	})
	dialers := make([]*authNode, 4)
	for i := range dialers {
		dialers[i] = startAuthNode(t, string(rune('p'+i))+"@host", nil)
	}
	for i := range 2 {
		if _, _, err := dialAuth(t, dialers[i], b); err != nil {
			t.Fatalf("new peer %d within the burst: %v", i, err)
		}
	}
	_, _, err := dialAuth(t, dialers[2], b)
	if !errors.Is(err, ErrFirstContactLimit) || !errors.Is(err, ErrPeerRejected) {
		t.Fatalf("3rd new peer at once: %v, want ErrFirstContactLimit and ErrPeerRejected", err)
	}
	if _, ok, _ := b.auth.Keys().TrustedKey(dialers[2].name); ok {
		t.Fatal("a peer refused for the first-contact rate was pinned")
	}
	if _, _, err := dialAuth(t, dialers[0], b); err != nil {
		t.Fatalf("a known peer while the bucket is empty: %v (known peers take no token)", err)
	}
	clock.advance(time.Second)
	if _, _, err := dialAuth(t, dialers[2], b); err != nil {
		t.Fatalf("new peer a second later at 1/s: %v", err)
	}
	if _, _, err := dialAuth(t, dialers[3], b); !errors.Is(err, ErrFirstContactLimit) {
		t.Fatalf("another new peer in the same second: %v, want ErrFirstContactLimit", err)
	}
}

// TestIdentityPinsBoundedAndNeverForRefused: a node with a DataDir writes
// no trusted key for a peer that failed the cluster secret, and no more
// than MaxTrustedKeys by trust on first use.
func TestIdentityPinsBoundedAndNeverForRefused(t *testing.T) {
	keys, err := OpenKeyStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthNode(t, "b@host", func(c *Config) {
		c.Keys = keys
		c.ClusterSecret = []byte("cookie")
		c.MaxTrustedKeys = 2
	})
	for i := range 3 {
		d := startAuthNode(t, string(rune('p'+i))+"@host", func(c *Config) { c.ClusterSecret = []byte("guess") })
		if _, _, err := dialAuth(t, d, b); !errors.Is(err, ErrClusterSecret) {
			t.Fatalf("wrong secret: %v", err)
		}
	}
	if n, err := keys.countTrusted(); err != nil || n != 0 {
		t.Fatalf("%d trusted keys (%v) after 3 refused peers, want 0", n, err)
	}
	for i := range 3 {
		d := startAuthNode(t, string(rune('x'+i))+"@host", func(c *Config) { c.ClusterSecret = []byte("cookie") })
		_, _, err := dialAuth(t, d, b)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("member %d: %v", i, err)
		case i == 2 && !errors.Is(err, ErrFirstContactLimit):
			t.Fatalf("member past MaxTrustedKeys: %v, want ErrFirstContactLimit", err)
		}
	}
	if n, err := keys.countTrusted(); err != nil || n != 2 {
		t.Fatalf("%d trusted keys (%v), want MaxTrustedKeys = 2", n, err)
	}
}
