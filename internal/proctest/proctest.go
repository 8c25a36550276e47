package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Runner is what testing.M (and testhome.M's result) has.
type Runner interface{ Run() int }

// buildEnv is the environment the go command runs with: the one the test
// binary started with, before any TestMain wrapper changed HOME.
var buildEnv = os.Environ()

var build struct {
	mu     sync.Mutex
	inM    bool
	dir    string
	bin    string
	err    error
	output string
}

// M wraps m: its Run runs m and then removes the binary Build made.
func M(m Runner) Runner { return runner{m} }

type runner struct{ m Runner }

func (r runner) Run() int {
	build.mu.Lock()
	build.inM = true
	build.mu.Unlock()
	code := r.m.Run()
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}

// TestNodePackage is the package Build compiles.
const TestNodePackage = "github.com/cask-p2p/cask/internal/testnode"

// Build compiles internal/testnode (the first call of the test binary;
// later calls return the same path) and returns the binary's path. It
// fails t if the build fails or the test binary's TestMain does not use M.
func Build(t testing.TB) string {
	t.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if !build.inM {
		t.Fatal("proctest: wrap the test binary's Run in proctest.M (TestMain)")
	}
	if build.bin == "" && build.err == nil {
		build.bin, build.output, build.err = buildTestNode()
	}
	if build.err != nil {
		t.Fatalf("proctest: build %s: %v\n%s", TestNodePackage, build.err, build.output)
	}
	return build.bin
}

func buildTestNode() (bin, output string, err error) {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return "", "", err
	}
	dir, err := os.MkdirTemp("", "cask-proctest-")
	if err != nil {
		return "", "", err
	}
	build.dir = dir
	bin = filepath.Join(dir, "testnode")
	cmd := exec.Command(goCmd, "build", "-o", bin, TestNodePackage)
	cmd.Env = buildEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", string(out), err
	}
	return bin, string(out), nil
}

// Event is one line a testnode printed. Fields an event kind does not use
// are zero (internal/testnode's doc.go lists the kinds).
type Event struct {
	Kind        string    `json:"event"`
	Time        time.Time `json:"t"`
	Node        string    `json:"node"`
	Addr        string    `json:"addr"`
	Incarnation string    `json:"incarnation"`
	Key         string    `json:"key"`
	Peer        string    `json:"peer"`
	Reason      string    `json:"reason"`
	Err         string    `json:"err"`
	Active      []string  `json:"active"`
	Passive     []string  `json:"passive"`
	MS          float64   `json:"ms"`
	// Numbered messages (internal/testnode's send, received, tally).
	Sent              int64 `json:"sent"`
	Received          int64 `json:"received"`
	Duplicates        int64 `json:"duplicates"`
	Reordered         int64 `json:"reordered"`
	DeadLettered      int64 `json:"dead_lettered"`
	SessionEnded      int64 `json:"session_ended"`
	Unacknowledged    int64 `json:"unacknowledged"`
	StatsDeadLettered int64 `json:"stats_dead_lettered"`
	// Raw is the line as printed.
	Raw string `json:"-"`
}

// Kind is a WaitFor predicate: an event of kind k.
func Kind(k string) func(Event) bool {
	return func(e Event) bool { return e.Kind == k }
}

// Proc is one testnode process.
type Proc struct {
	bin  string
	args []string
	env  []string
	cmd  *exec.Cmd
	t    testing.TB

	stdinMu sync.Mutex
	stdin   interface {
		Write([]byte) (int, error)
		Close() error
	}

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every new event and at exit
	stderr  tailBuffer

	exited  chan struct{}
	exitErr error
}

// stderrKeep is how much of a process's stderr is kept.
const stderrKeep = 64 << 10

// Start starts bin with args and the test's environment (set CASK_COOKIE
// with t.Setenv first). The process is killed at the end of the test if
// it still runs.
func Start(t testing.TB, bin string, args ...string) *Proc {
	t.Helper()
	return start(t, bin, slices.Clone(args), os.Environ())
}

func start(t testing.TB, bin string, args, env []string) *Proc {
	p := &Proc{bin: bin, args: args, env: env, t: t, changed: make(chan struct{}), exited: make(chan struct{})}
	p.stderr.keep = stderrKeep
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stderr = &p.stderr
	orphanGuard(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("proctest: %v", err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("proctest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("proctest: start %s: %v", bin, err)
	}
	p.cmd, p.stdin = cmd, stdin
	go p.read(stdout)
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("proctest: %s %s\n%s\nstderr (tail):\n%s", filepath.Base(bin), strings.Join(args, " "), p.eventLines(), p.stderr.String())
		}
	})
	return p
}

// read collects stdout events until the process closes stdout, then
// waits for its exit.
func (p *Proc) read(stdout interface{ Read([]byte) (int, error) }) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var e Event
		if json.Unmarshal([]byte(line), &e) != nil {
			e = Event{}
		}
		e.Raw = line
		p.mu.Lock()
		p.events = append(p.events, e)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	err := p.cmd.Wait()
	p.mu.Lock()
	p.exitErr = err
	close(p.exited)
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// PID is the operating system's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Args are the flags the process was started with.
func (p *Proc) Args() []string { return slices.Clone(p.args) }

// Events returns every event printed so far, in order.
func (p *Proc) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// Last returns the latest event of kind k, if any.
func (p *Proc) Last(k string) (Event, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].Kind == k {
			return p.events[i], true
		}
	}
	return Event{}, false
}

// WaitFor returns the first event, printed so far or within timeout,
// for which pred is true. It fails (returns an error) when timeout passes
// or the process exits first.
func (p *Proc) WaitFor(pred func(Event) bool, timeout time.Duration) (Event, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.events); seen++ {
			if pred(p.events[seen]) {
				e := p.events[seen]
				p.mu.Unlock()
				return e, nil
			}
		}
		changed := p.changed
		exited := p.exited
		p.mu.Unlock()
		select {
		case <-exited:
			// The reader appends every line before closing exited:
			// look once more, then give up.
			p.mu.Lock()
			n := len(p.events)
			p.mu.Unlock()
			if seen == n {
				return Event{}, fmt.Errorf("proctest: %s exited (%v) before the event", p.name(), p.ExitErr())
			}
		case <-changed:
		case <-deadline.C:
			return Event{}, fmt.Errorf("proctest: %s: no such event within %v", p.name(), timeout)
		}
	}
}

// MustWaitFor is WaitFor that fails t.
func (p *Proc) MustWaitFor(t testing.TB, pred func(Event) bool, timeout time.Duration) Event {
	t.Helper()
	e, err := p.WaitFor(pred, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Send writes one command line to the process's stdin.
func (p *Proc) Send(command string) error {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	_, err := p.stdin.Write([]byte(command + "\n"))
	return err
}

// exitWait bounds how long Kill and Wait's callers wait for an exit the
// operating system was told to make.
const exitWait = 10 * time.Second

// Kill sends SIGKILL (kill -9) and waits for the exit. It is a no-op on a
// process that has exited.
func (p *Proc) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(exitWait):
		p.t.Errorf("proctest: %s did not exit %v after SIGKILL", p.name(), exitWait)
	}
}

// Term sends SIGTERM (a graceful stop) and does not wait; use Wait.
func (p *Proc) Term() error { return p.cmd.Process.Signal(syscall.SIGTERM) }

// Wait waits up to timeout for the process to exit and returns its exit
// error (nil for status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.exited:
		return p.ExitErr()
	case <-time.After(timeout):
		return fmt.Errorf("proctest: %s still running after %v", p.name(), timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// ExitErr is the exit error once the process exited (nil before, and for
// status 0).
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// Restart starts the same binary with the same flags and environment
// again, once p has exited (it kills p first if it has not). The new
// process is tied to t.
func (p *Proc) Restart(t testing.TB) *Proc {
	t.Helper()
	p.Kill()
	return start(t, p.bin, p.args, p.env)
}

func (p *Proc) name() string {
	for i, a := range p.args {
		if a == "-name" && i+1 < len(p.args) {
			return fmt.Sprintf("%s (pid %d)", p.args[i+1], p.PID())
		}
	}
	return fmt.Sprintf("pid %d", p.PID())
}

func (p *Proc) eventLines() string {
	var b strings.Builder
	for _, e := range p.Events() {
		b.WriteString(e.Raw)
		b.WriteByte('\n')
	}
	return b.String()
}

// Stderr returns the kept tail of the process's stderr.
func (p *Proc) Stderr() string { return p.stderr.String() }

// tailBuffer keeps the last keep bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	keep int
	b    []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, b...)
	if over := len(t.b) - t.keep; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
