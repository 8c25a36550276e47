package testkit_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors/testkit"
)

// The upstream suite is written with upstream protoactor-go's testkit names
// only (NewTestProbe, GetNextMessageOf, TestMailboxStats...), the way a
// protoactor user's tests are, and runs twice: with the actor under test
// on the probe's own actor system, and on another Cask node. Only the setup
// in TestUpstreamAPILocal and TestUpstreamAPIRemote knows the difference.

// upstreamEnv is where the suite runs.
type upstreamEnv struct {
	// system is the probe's actor system.
	system *actor.ActorSystem
	// spawn starts an actor from props and returns a PID for it that is
	// good to use from system.
	spawn func(t *testing.T, props *actor.Props) *actor.PID
}

func TestUpstreamAPILocal(t *testing.T) {
	system := newSystem(t)
	runUpstreamSuite(t, upstreamEnv{
		system: system,
		spawn: func(t *testing.T, props *actor.Props) *actor.PID {
			return system.Root.Spawn(props)
		},
	})
}

func TestUpstreamAPIRemote(t *testing.T) {
	c := testkit.NewCluster(t, 2, testkit.ClusterConfig{})
	local, remote := c.Node(0), c.Node(1)
	env := upstreamEnv{
		system: local.System(),
		spawn: func(t *testing.T, props *actor.Props) *actor.PID {
			t.Helper()
			spawned := remote.Root().Spawn(props)
			if spawned.Address != remote.Name() || spawned.Address == local.Name() {
				t.Fatalf("spawned %v, want a PID on %s", spawned, remote.Name())
			}
			// A new PID value, without the process the spawning node cached
			// in it, so sends from the local node go over the network.
			return actor.NewPID(spawned.Address, spawned.Id)
		},
	}
	runUpstreamSuite(t, env)

	// The suite's messages do cross the network: a delay on the link
	// between the two nodes delays them.
	t.Run("CrossesTheNetwork", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		c.Link(0, 1).SetDelay(delay)
		defer c.Link(0, 1).SetDelay(0)
		probe := spawnProbe(env)
		target := spawnSubject(t, env, probe)
		start := time.Now()
		if _, err := testkit.RequestFuture[*wrapperspb.StringValue](probe, target, str("ping"), waitTimeout); err != nil {
			t.Fatal(err)
		}
		if elapsed := time.Since(start); elapsed < 2*delay {
			t.Fatalf("round trip took %v over a link delayed %v each way", elapsed, delay)
		}
	})
}

func runUpstreamSuite(t *testing.T, env upstreamEnv) {
	t.Run("RequestAndSender", func(t *testing.T) { upstreamRequestAndSender(t, env) })
	t.Run("SendHasNoSender", func(t *testing.T) { upstreamSendHasNoSender(t, env) })
	t.Run("Respond", func(t *testing.T) { upstreamRespond(t, env) })
	t.Run("RequestFuture", func(t *testing.T) { upstreamRequestFuture(t, env) })
	t.Run("GetNextMessageOfAndWhere", func(t *testing.T) { upstreamGetNextMessageOfAndWhere(t, env) })
	t.Run("FishForMessage", func(t *testing.T) { upstreamFishForMessage(t, env) })
	t.Run("ExpectNoMessage", func(t *testing.T) { upstreamExpectNoMessage(t, env) })
	t.Run("MailboxAndSendStats", func(t *testing.T) { upstreamMailboxAndSendStats(t, env) })
	t.Run("ReceiveStats", func(t *testing.T) { upstreamReceiveStats(t, env) })
	t.Run("ZeroTimeoutIsOneSecond", func(t *testing.T) {
		runSideBySide(t, env, map[string]func(*testing.T, upstreamEnv){
			"GetNextMessage":      upstreamZeroGetNextMessage,
			"GetNextMessageWaits": upstreamZeroGetNextMessageWaits,
			"ExpectNoMessage":     upstreamZeroExpectNoMessage,
			"FishForMessageOf":    upstreamZeroFishForMessageOf,
			"RequestFuture":       upstreamZeroRequestFuture,
		})
	})
}

// runSideBySide runs each test as a subtest of t, all at once: they spend
// their time waiting a second, not working, so they need not queue for
// the -parallel slots that t.Parallel would take.
func runSideBySide(t *testing.T, env upstreamEnv, tests map[string]func(*testing.T, upstreamEnv)) {
	var wg sync.WaitGroup
	for name, test := range tests {
		wg.Go(func() { t.Run(name, func(t *testing.T) { test(t, env) }) })
	}
	wg.Wait()
}

// subject is the actor under test. It speaks wrapperspb messages, so that
// it works across nodes, and tells observer (the probe) what it saw:
//
//	"ping"     Respond "pong"; a Respond has no sender
//	"hello"    Request "hello back" to the sender; the reply's sender is the subject
//	"sender?"  Send observer true if the message had a sender, else false
//	"ask"      Request "question" to the sender
//	"answer"   Send observer "got answer"
//	"burst"    Send observer 1, "noise", 2, "last"
//
// It ignores everything else, "silence" included.
func subject(observer *actor.PID) actor.ReceiveFunc {
	return func(ctx actor.Context) {
		m, ok := ctx.Message().(*wrapperspb.StringValue)
		if !ok {
			return
		}
		switch m.Value {
		case "ping":
			ctx.Respond(wrapperspb.String("pong"))
		case "hello":
			ctx.Request(ctx.Sender(), wrapperspb.String("hello back"))
		case "sender?":
			ctx.Send(observer, wrapperspb.Bool(ctx.Sender() != nil))
		case "ask":
			ctx.Request(ctx.Sender(), wrapperspb.String("question"))
		case "answer":
			ctx.Send(observer, wrapperspb.String("got answer"))
		case "burst":
			for _, msg := range []proto.Message{wrapperspb.Int64(1), wrapperspb.String("noise"), wrapperspb.Int64(2), wrapperspb.String("last")} {
				ctx.Send(observer, msg)
			}
		}
	}
}

// spawnProbe spawns a TestProbe on env's system, the upstream way.
func spawnProbe(env upstreamEnv) *testkit.TestProbe {
	probe := testkit.NewTestProbe()
	env.system.Root.Spawn(actor.PropsFromFunc(probe.Receive))
	return probe
}

// spawnSubject spawns a subject reporting to probe, with opts on its props.
func spawnSubject(t *testing.T, env upstreamEnv, probe *testkit.TestProbe, opts ...actor.PropsOption) *actor.PID {
	t.Helper()
	self := probe.Context().Self()
	observer := actor.NewPID(self.Address, self.Id) // no cached process: from a remote node, the network
	return env.spawn(t, actor.PropsFromFunc(subject(observer), opts...))
}

func str(s string) *wrapperspb.StringValue { return wrapperspb.String(s) }

func hasValue(want string) func(*wrapperspb.StringValue) bool {
	return func(m *wrapperspb.StringValue) bool { return m.GetValue() == want }
}

func isString(want string) func(any) bool {
	return func(m any) bool {
		s, ok := m.(*wrapperspb.StringValue)
		return ok && s.GetValue() == want
	}
}

func countStrings(msgs []any, want string) int {
	n := 0
	for _, m := range msgs {
		if isString(want)(m) {
			n++
		}
	}
	return n
}

func upstreamRequestAndSender(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Request(target, str("hello"))
	got, err := testkit.GetNextMessageOf[*wrapperspb.StringValue](probe, waitTimeout)
	if err != nil || got.GetValue() != "hello back" {
		t.Fatalf("GetNextMessageOf = %v, %v; want \"hello back\"", got, err)
	}
	if !probe.Sender().Equal(target) {
		t.Fatalf("Sender() = %v, want the subject %v", probe.Sender(), target)
	}
}

func upstreamSendHasNoSender(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Send(target, str("sender?"))
	probe.Request(target, str("sender?"))
	for _, want := range []bool{false, true} {
		got, err := testkit.GetNextMessageOf[*wrapperspb.BoolValue](probe, waitTimeout)
		if err != nil || got.GetValue() != want {
			t.Fatalf("subject saw a sender: %v, %v; want %v (Send first, then Request)", got, err, want)
		}
		if probe.Sender() != nil {
			t.Fatalf("Sender() = %v after a message sent without sender", probe.Sender())
		}
	}
}

func upstreamRespond(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Request(target, str("ask"))
	if _, err := testkit.GetNextMessageWhere(probe, hasValue("question"), waitTimeout); err != nil {
		t.Fatal(err)
	}
	if !probe.Sender().Equal(target) {
		t.Fatalf("Sender() = %v, want the subject %v", probe.Sender(), target)
	}
	probe.Respond(str("answer"))
	if _, err := testkit.GetNextMessageWhere(probe, hasValue("got answer"), waitTimeout); err != nil {
		t.Fatal(err)
	}

	// "got answer" came without a sender: Respond has nobody to answer.
	probe.Respond(str("answer"))
	if err := probe.ExpectNoMessage(quietPeriod); err != nil {
		t.Fatalf("Respond with no sender reached someone: %v", err)
	}
}

func upstreamRequestFuture(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	got, err := testkit.RequestFuture[*wrapperspb.StringValue](probe, target, str("ping"), waitTimeout)
	if err != nil || got.GetValue() != "pong" {
		t.Fatalf("RequestFuture = %v, %v; want \"pong\"", got, err)
	}
	if n, err := testkit.RequestFuture[*wrapperspb.Int64Value](probe, target, str("ping"), waitTimeout); err == nil {
		t.Fatalf("RequestFuture[*Int64Value] of a string reply = %v, want an error", n)
	}
	if _, err := testkit.RequestFuture[*wrapperspb.StringValue](probe, target, str("silence"), quietPeriod); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("RequestFuture with no reply: %v, want actor.ErrTimeout", err)
	}
	// The replies went to the futures, not to the probe.
	if err := probe.ExpectNoMessage(quietPeriod); err != nil {
		t.Fatal(err)
	}
}

func upstreamGetNextMessageOfAndWhere(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Send(target, str("burst")) // 1, "noise", 2, "last"
	if got, err := testkit.GetNextMessageOf[*wrapperspb.StringValue](probe, waitTimeout); err == nil {
		t.Fatalf("GetNextMessageOf[*StringValue] took %v, want an error for the Int64Value 1", got)
	}
	if got, err := testkit.GetNextMessageWhere(probe, hasValue("not noise"), waitTimeout); err == nil {
		t.Fatalf("GetNextMessageWhere took %v, want an error for \"noise\"", got)
	}
	n, err := testkit.GetNextMessageOf[*wrapperspb.Int64Value](probe, waitTimeout)
	if err != nil || n.GetValue() != 2 {
		t.Fatalf("GetNextMessageOf[*Int64Value] = %v, %v; want 2 (the failed calls took 1 and \"noise\")", n, err)
	}
	last, err := testkit.GetNextMessageWhere(probe, hasValue("last"), waitTimeout)
	if err != nil || last.GetValue() != "last" {
		t.Fatalf("GetNextMessageWhere = %v, %v; want \"last\"", last, err)
	}
	if got, err := probe.GetNextMessage(quietPeriod); err == nil {
		t.Fatalf("GetNextMessage on an empty queue = %v, want an error", got)
	}
}

func upstreamFishForMessage(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Send(target, str("burst")) // 1, "noise", 2, "last"
	two, err := testkit.FishForMessage(probe, func(m *wrapperspb.Int64Value) bool { return m.GetValue() == 2 }, waitTimeout)
	if err != nil || two.GetValue() != 2 {
		t.Fatalf("FishForMessage = %v, %v; want 2", two, err)
	}
	last, err := testkit.FishForMessageOf[*wrapperspb.StringValue](probe, waitTimeout)
	if err != nil || last.GetValue() != "last" {
		t.Fatalf("FishForMessageOf = %v, %v; want \"last\" (the first string was dropped)", last, err)
	}
	probe.Request(target, str("ping"))
	if got, err := testkit.FishForMessageOf[*wrapperspb.Int64Value](probe, quietPeriod); err == nil {
		t.Fatalf("FishForMessageOf[*Int64Value] = %v, want an error: only \"pong\" came", got)
	}
	if err := probe.ExpectNoMessage(quietPeriod); err != nil {
		t.Fatalf("the fish did not drop \"pong\": %v", err)
	}
}

func upstreamExpectNoMessage(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	if err := probe.ExpectNoMessage(quietPeriod); err != nil {
		t.Fatalf("ExpectNoMessage on a quiet probe: %v", err)
	}
	probe.Request(target, str("ping"))
	start := time.Now()
	if err := probe.ExpectNoMessage(waitTimeout); err == nil {
		t.Fatal("ExpectNoMessage missed the \"pong\"")
	}
	if elapsed := time.Since(start); elapsed >= waitTimeout {
		t.Fatalf("ExpectNoMessage took %v to report a message, want it at once", elapsed)
	}
}

func upstreamMailboxAndSendStats(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	stats := testkit.NewTestMailboxStats(isString("ping"))
	target := spawnSubject(t, env, probe, testkit.WithMailboxStats(stats), testkit.WithSendStats(stats))

	probe.Request(target, str("ping"))
	select {
	case <-stats.Reset: // the subject has handled "ping", and sent "pong"
	case <-time.After(waitTimeout):
		t.Fatal("Reset did not signal the received \"ping\"")
	}
	if n := countStrings(stats.Received, "ping"); n != 1 {
		t.Fatalf("Received has \"ping\" %d times, want 1: %v", n, stats.Received)
	}
	if _, ok := stats.Received[0].(*actor.Started); !ok {
		t.Fatalf("Received starts with %T, want *actor.Started: %v", stats.Received[0], stats.Received)
	}
	if countStrings(stats.Posted, "ping") != 1 || countStrings(stats.Posted, "pong") != 1 {
		t.Fatalf("Posted = %v, want \"ping\" (posted) and \"pong\" (sent) once each", stats.Posted)
	}
	if _, err := testkit.GetNextMessageWhere(probe, hasValue("pong"), waitTimeout); err != nil {
		t.Fatal(err)
	}
}

func upstreamReceiveStats(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	stats := testkit.NewTestMailboxStats(isString("ping"))
	target := spawnSubject(t, env, probe, testkit.WithReceiveStats(stats))

	probe.Request(target, str("ping"))
	select {
	case <-stats.Reset: // "ping" is about to be handled
	case <-time.After(waitTimeout):
		t.Fatal("Reset did not signal the received \"ping\"")
	}
	if len(stats.Received) != 2 || !isString("ping")(stats.Received[1]) {
		t.Fatalf("Received = %v, want *actor.Started then \"ping\"", stats.Received)
	}
	if len(stats.Posted) != 0 {
		t.Fatalf("Posted = %v with only receive stats, want nothing", stats.Posted)
	}
	if _, err := testkit.GetNextMessageWhere(probe, hasValue("pong"), waitTimeout); err != nil {
		t.Fatal(err)
	}
}

// requireAboutOneSecond fails t unless a wait given a zero timeout lasted
// the default second: not less, and not much more.
func requireAboutOneSecond(t *testing.T, what string, elapsed time.Duration) {
	t.Helper()
	if elapsed < time.Second || elapsed > 3*time.Second {
		t.Fatalf("%s(0) gave up after %v, want about one second", what, elapsed)
	}
}

func upstreamZeroGetNextMessage(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)

	start := time.Now()
	if got, err := probe.GetNextMessage(0); err == nil {
		t.Fatalf("GetNextMessage(0) on a quiet probe = %v, want an error", got)
	}
	requireAboutOneSecond(t, "GetNextMessage", time.Since(start))
}

func upstreamZeroGetNextMessageWaits(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	const later = 200 * time.Millisecond
	start := time.Now()
	time.AfterFunc(later, func() { probe.Request(target, str("ping")) })
	got, err := testkit.GetNextMessageOf[*wrapperspb.StringValue](probe, 0)
	if err != nil || got.GetValue() != "pong" {
		t.Fatalf("GetNextMessageOf(0) = %v, %v; want the \"pong\" to a ping sent %v later", got, err, later)
	}
	if elapsed := time.Since(start); elapsed < later {
		t.Fatalf("got the reply after %v, before the ping was sent", elapsed)
	}
}

func upstreamZeroExpectNoMessage(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)

	start := time.Now()
	if err := probe.ExpectNoMessage(0); err != nil {
		t.Fatalf("ExpectNoMessage(0) on a quiet probe: %v", err)
	}
	requireAboutOneSecond(t, "ExpectNoMessage", time.Since(start))
}

func upstreamZeroFishForMessageOf(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	probe.Request(target, str("ping")) // only a string comes
	start := time.Now()
	if got, err := testkit.FishForMessageOf[*wrapperspb.Int64Value](probe, 0); err == nil {
		t.Fatalf("FishForMessageOf(0) = %v, want an error", got)
	}
	requireAboutOneSecond(t, "FishForMessageOf", time.Since(start))
}

func upstreamZeroRequestFuture(t *testing.T, env upstreamEnv) {
	probe := spawnProbe(env)
	target := spawnSubject(t, env, probe)

	if got, err := testkit.RequestFuture[*wrapperspb.StringValue](probe, target, str("ping"), 0); err != nil || got.GetValue() != "pong" {
		t.Fatalf("RequestFuture(0) = %v, %v; want \"pong\" within the default second", got, err)
	}
	start := time.Now()
	if _, err := testkit.RequestFuture[*wrapperspb.StringValue](probe, target, str("silence"), 0); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("RequestFuture(0) with no reply: %v, want actor.ErrTimeout", err)
	}
	requireAboutOneSecond(t, "RequestFuture", time.Since(start))
}
