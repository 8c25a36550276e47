//go:build linux

package watchdog_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cask-p2p/cask/examples/watchdog/watchdog"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// In a network namespace of its own (addresses exist only inside it), the
// watcher sees a default route appear and go.
func TestRouteWatcherSeesDefaultRouteChanges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test creates a network namespace and needs root (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatal("this test needs iproute2's ip command (.ci/run installs it)")
	}
	ns := fmt.Sprintf("caskrt%d", os.Getpid())
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ip(t, "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "d0")
	ip(t, "-n", ns, "link", "set", "d0", "up")
	ip(t, "-n", ns, "link", "set", "d1", "up")

	// Open the netlink socket inside the namespace; it stays bound to it.
	w := openIn(t, "/var/run/netns/"+ns)
	defer w.Close()
	changes := make(chan struct{}, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { changes <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	ip(t, "-n", ns, "route", "add", "default", "via", "10.99.0.2", "dev", "d0")
	expectChange(t, changes)
	ip(t, "-n", ns, "route", "add", "10.98.0.0/24", "via", "10.99.0.2", "dev", "d0")
	select {
	case <-changes:
		t.Fatal("a non-default route counted as a default-route change")
	case <-time.After(300 * time.Millisecond):
	}
	ip(t, "-n", ns, "route", "del", "default")
	expectChange(t, changes)
}

func expectChange(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no default-route change reported")
	}
}

// openIn opens a RouteWatcher in the namespace at path, from a locked
// thread that returns to its own namespace afterwards.
func openIn(t *testing.T, path string) *watchdog.RouteWatcher {
	t.Helper()
	type result struct {
		w   *watchdog.RouteWatcher
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if restoring the namespace failed it
		// must die with the goroutine rather than serve others.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		w, err := watchdog.OpenRouteWatcher()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("back to own namespace: %w", err)}
			return
		}
		if err == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{w, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.w
}
