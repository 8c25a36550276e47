// Package testhome gives a test binary a home of its own: a fresh
// temporary directory as the user's home and configuration directory,
// and no CASK_COOKIE. Tests that start nodes with the default admission
// (the cluster cookie under os.UserConfigDir()) then create and share a
// cookie there, as on a freshly installed machine, and never read or
// write the real user's. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testhome.M(m).Run()) }
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(testhome.M(m)) }
package testhome

import (
	"fmt"
	"os"
	"path/filepath"
)

// Runner is what testing.M and goleak.VerifyTestMain have in common.
type Runner interface{ Run() int }

// M wraps m: its Run sets the environment up, runs m and removes the
// directory again.
func M(m Runner) Runner { return runner{m} }

type runner struct{ m Runner }

// homeVars are the variables os.UserHomeDir and os.UserConfigDir read.
var homeVars = []string{"HOME", "XDG_CONFIG_HOME", "AppData", "USERPROFILE", "home"}

func (r runner) Run() int {
	dir, err := os.MkdirTemp("", "cask-testhome-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testhome:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	// The go command finds its build cache, module cache and settings
	// under the home; a test that runs "go" (a generator check, a node
	// program built for a multi-process test) keeps the real ones, or it
	// would rebuild and download everything into the temporary home.
	if err := pinGoDirs(); err != nil {
		fmt.Fprintln(os.Stderr, "testhome:", err)
		return 2
	}
	for _, v := range homeVars {
		if err := os.Setenv(v, dir); err != nil {
			fmt.Fprintln(os.Stderr, "testhome:", err)
			return 2
		}
	}
	if err := os.Unsetenv("CASK_COOKIE"); err != nil {
		fmt.Fprintln(os.Stderr, "testhome:", err)
		return 2
	}
	return r.m.Run()
}

// pinGoDirs sets GOCACHE, GOPATH, GOMODCACHE and GOENV to the places the
// go command uses under the real home, where they are not set already.
func pinGoDirs() error {
	home, herr := os.UserHomeDir()
	cache, cerr := os.UserCacheDir()
	config, ferr := os.UserConfigDir()
	set := func(name, value string) error {
		if os.Getenv(name) != "" || value == "" {
			return nil
		}
		return os.Setenv(name, value)
	}
	if cerr == nil {
		if err := set("GOCACHE", filepath.Join(cache, "go-build")); err != nil {
			return err
		}
	}
	if herr == nil {
		if err := set("GOPATH", filepath.Join(home, "go")); err != nil {
			return err
		}
	}
	if gopath := os.Getenv("GOPATH"); gopath != "" {
		first := filepath.SplitList(gopath)[0]
		if err := set("GOMODCACHE", filepath.Join(first, "pkg", "mod")); err != nil {
			return err
		}
	}
	if ferr == nil {
		if err := set("GOENV", filepath.Join(config, "go", "env")); err != nil {
			return err
		}
	}
	return nil
}
