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
