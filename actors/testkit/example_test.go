package testkit_test

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors/testkit"
)

func ExampleMailboxStats() {
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond),
	)
	defer system.Shutdown()

	stats := testkit.NewMailboxStats()
	counter := system.Root.Spawn(testkit.WithStats(actor.PropsFromFunc(func(ctx actor.Context) {}), stats))

	for range 3 {
		system.Root.Send(counter, "tick")
	}
	handled := func() bool { return testkit.Count[string](stats).Received == 3 }
	fmt.Println("all handled:", stats.WaitUntil(handled, time.Second))
	fmt.Printf("%+v\n", testkit.Count[string](stats))
	fmt.Printf("%+v\n", testkit.Count[*actor.Started](stats))

	// Output:
	// all handled: true
	// {Posted:3 Delivered:3 Received:3 Sent:0}
	// {Posted:1 Delivered:1 Received:1 Sent:0}
}

// A test written for upstream protoactor-go's testkit: the test spawns the
// probe, and every wait returns an error rather than failing the test.
func ExampleTestProbe() {
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }),
		actor.WithDeadLetterThrottleInterval(10*time.Millisecond),
	)
	defer system.Shutdown()

	greeter := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if name, ok := ctx.Message().(string); ok {
			ctx.Respond("hello " + name)
		}
	}))
	probe := testkit.NewTestProbe()
	system.Root.Spawn(actor.PropsFromFunc(probe.Receive))

	probe.Request(greeter, "probe")
	reply, err := testkit.GetNextMessageOf[string](probe, 0) // 0: wait up to one second
	fmt.Println(reply, err)

	answer, err := testkit.RequestFuture[string](probe, greeter, "future", time.Second)
	fmt.Println(answer, err)

	fmt.Println(probe.ExpectNoMessage(10*time.Millisecond) == nil)

	// Output:
	// hello probe <nil>
	// hello future <nil>
	// true
}
