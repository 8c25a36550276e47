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
