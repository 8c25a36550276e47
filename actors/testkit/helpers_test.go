package testkit_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/cask-p2p/cask/internal/testhome"
)

func TestMain(m *testing.M) {
	// A Cask node's actor system keeps protoactor's default dead-letter
	// throttle interval of one second (actors.Config has no knob for it), so
	// a dead letter in a node's last second (one is routine while a cluster
	// stops) leaves the throttle's timer goroutine running for up to a
	// second after the test. dist's tests ignore it the same way; see
	// dist/leak_test.go. The name differs with and without inlining.
	goleak.VerifyTestMain(testhome.M(m),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"),
	)
}

const (
	// waitTimeout bounds waits that are expected to succeed.
	waitTimeout = 2 * time.Second
	// quietPeriod is how long a wait that is expected to fail lasts.
	quietPeriod = 50 * time.Millisecond
)

type ping struct{ n int }

type pong struct{ n int }

// seen is what a reporter actor tells the probe about a message it got.
type seen struct {
	message any
	sender  *actor.PID
}

func newSystem(t *testing.T) *actor.ActorSystem {
	t.Helper()

	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.DiscardHandler)
		}),
		// The dead-letter throttle keeps a goroutine for one interval after
		// a dead letter; keep it short so the leak check does not see it.
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond),
	)
	t.Cleanup(system.Shutdown)

	return system
}

// echo answers every *ping with a *pong carrying the same number.
func echo(ctx actor.Context) {
	if p, ok := ctx.Message().(*ping); ok {
		ctx.Respond(&pong{n: p.n})
	}
}

// reportTo returns a behaviour that tells to, for every string it gets,
// the string and its sender. It reports with Request, so the report's sender
// is the reporter (ctx.Respond and ctx.Send would leave it empty).
func reportTo(to *actor.PID) actor.ReceiveFunc {
	return func(ctx actor.Context) {
		if s, ok := ctx.Message().(string); ok {
			ctx.Request(to, seen{message: s, sender: ctx.Sender()})
		}
	}
}

// recordingTB is a testing.TB whose Fatal and Error methods record the
// failure instead of failing the test, so that tests can check that testkit
// reports failures. Everything else goes to the real test.
type recordingTB struct {
	testing.TB

	mu       sync.Mutex
	failures []string
}

func newRecordingTB(t *testing.T) *recordingTB { return &recordingTB{TB: t} }

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }
func (r *recordingTB) Errorf(format string, args ...any) { r.fail(fmt.Sprintf(format, args...)) }
func (r *recordingTB) Fatal(args ...any)                 { r.fail(fmt.Sprint(args...)) }
func (r *recordingTB) Error(args ...any)                 { r.fail(fmt.Sprint(args...)) }

func (r *recordingTB) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, msg)
}

func (r *recordingTB) Failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failures...)
}

// requireNoFailures fails t if r recorded any failure.
func (r *recordingTB) requireNoFailures(t *testing.T) {
	t.Helper()
	if got := r.Failures(); len(got) != 0 {
		t.Fatalf("unexpected failures reported: %q", got)
	}
}

// requireOneFailure fails t unless r recorded exactly one failure, and that
// failure mentions want.
func (r *recordingTB) requireOneFailure(t *testing.T, want string) {
	t.Helper()
	got := r.Failures()
	if len(got) != 1 {
		t.Fatalf("want exactly one failure mentioning %q, got %q", want, got)
	}
	if !strings.Contains(got[0], want) {
		t.Fatalf("failure %q does not mention %q", got[0], want)
	}
}
