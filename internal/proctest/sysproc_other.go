//go:build !linux

package proctest

import "os/exec"

// orphanGuard: only Linux has a parent-death signal; elsewhere a child
// outlives a test binary that dies without cleaning up.
func orphanGuard(*exec.Cmd) {}
