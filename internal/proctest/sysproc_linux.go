package proctest

import (
	"os/exec"
	"syscall"
)

// orphanGuard makes the kernel kill the child if the test binary dies
// (a test timeout, a panic) before it could clean up.
func orphanGuard(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
