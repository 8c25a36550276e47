package identity

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// The cluster cookie: the secret a node proves when no explicit secret is
// configured (docs/security.md, "Admission").
const (
	// CookieEnv names the environment variable that holds the cluster
	// secret when none is configured. Its value is used as is.
	CookieEnv = "CASK_COOKIE"
	// cookieDirName and cookieFileName place the cookie file under
	// os.UserConfigDir(): cask/cookie.
	cookieDirName  = "cask"
	cookieFileName = "cookie"
	cookieDirMode  = 0o700
	cookieFileMode = 0o600
	// cookieRandomBytes of randomness, base64url text in the file.
	cookieRandomBytes = 32
	cookieTempPattern = ".cookie.tmp-*"
)

// Cookie errors.
var (
	// ErrInsecureCookieFile means the cookie file is readable or writable
	// by group or others; the node refuses to use it.
	ErrInsecureCookieFile = errors.New("identity: cookie file is accessible by others")
	// ErrEmptyCookie means the cookie file (or CASK_COOKIE, when set)
	// holds no secret.
	ErrEmptyCookie = errors.New("identity: empty cluster cookie")
)

// CookieSource says where DefaultClusterSecret found the secret.
type CookieSource struct {
	// Env is true when the secret came from CASK_COOKIE.
	Env bool
	// Path is the cookie file, when the secret came from it.
	Path string
	// Created is true when this call created the cookie file.
	Created bool
}

func (s CookieSource) String() string {
	switch {
	case s.Env:
		return "$" + CookieEnv
	case s.Created:
		return s.Path + " (created)"
	}
	return s.Path
}

// DefaultClusterSecret is the cluster secret of a node configured with
// none: the value of CASK_COOKIE when that variable is set, else the
// contents of the file cask/cookie under os.UserConfigDir(), created with
// a random value and mode 0600 when it does not exist. So every node one
// user runs on one machine shares one secret with no configuration.
//
// Several processes may call it at once: the file is written under a
// temporary name and linked into place, so exactly one value wins and
// every caller reads that one. A cookie file that group or others may
// access fails with ErrInsecureCookieFile; an empty one with
// ErrEmptyCookie.
func DefaultClusterSecret() ([]byte, CookieSource, error) {
	if v, ok := os.LookupEnv(CookieEnv); ok {
		if v == "" {
			return nil, CookieSource{Env: true}, fmt.Errorf("%w: %s is set but empty", ErrEmptyCookie, CookieEnv)
		}
		return []byte(v), CookieSource{Env: true}, nil
	}
	path, err := CookiePath()
	if err != nil {
		return nil, CookieSource{}, err
	}
	secret, created, err := ReadOrCreateCookie(path)
	return secret, CookieSource{Path: path, Created: created}, err
}

// CookiePath is the default cookie file: cask/cookie under
// os.UserConfigDir().
func CookiePath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("identity: locate the cookie file: %w (set %s or Config.ClusterSecret)", err, CookieEnv)
	}
	return filepath.Join(dir, cookieDirName, cookieFileName), nil
}

// ReadOrCreateCookie returns the secret in the cookie file at path,
// creating the file (and its directory, mode 0700) with a fresh random
// value first if it does not exist. The secret is the file's contents
// without surrounding white space, so the file may be copied to another
// machine, or its contents put in CASK_COOKIE, to admit a node there.
// created reports whether this call wrote the file.
func ReadOrCreateCookie(path string) (secret []byte, created bool, err error) {
	secret, err = readCookie(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), cookieDirMode); err != nil {
		return nil, false, fmt.Errorf("identity: create cookie directory: %w", err)
	}
	created, err = createCookie(path)
	if err != nil {
		return nil, false, err
	}
	secret, err = readCookie(path)
	return secret, created, err
}

// createCookie writes a random cookie to a temporary file (mode 0600 before
// any byte is written) and links it to path. Link fails when path exists,
// so when several processes race, the first link wins and the others read
// its value; nobody ever sees a partly written cookie.
func createCookie(path string) (bool, error) {
	raw := make([]byte, cookieRandomBytes)
	if _, err := rand.Read(raw); err != nil {
		return false, fmt.Errorf("identity: cookie: %w", err)
	}
	text := base64.RawURLEncoding.AppendEncode(nil, raw)
	text = append(text, '\n')

	f, err := os.CreateTemp(filepath.Dir(path), cookieTempPattern)
	if err != nil {
		return false, fmt.Errorf("identity: create cookie: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	err = f.Chmod(cookieFileMode)
	if err == nil {
		_, err = f.Write(text)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("identity: create cookie: %w", err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // another process was first: use its cookie
		}
		return false, fmt.Errorf("identity: create cookie: %w", err)
	}
	return true, nil
}

// readCookie reads the cookie at path, refusing a file others may access
// (as for node.key) and an empty one.
func readCookie(path string) ([]byte, error) {
	b, err := readSmallFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("identity: read cookie %s: %w", path, err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("identity: stat cookie %s: %w", path, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrInsecureCookieFile, path, perm, path)
		}
	}
	secret := bytes.TrimSpace(b)
	if len(secret) == 0 {
		return nil, fmt.Errorf("%w: %s holds no secret (remove it to create a new one)", ErrEmptyCookie, path)
	}
	return secret, nil
}
