// Command links runs two Cask nodes in one process and shows Erlang-style
// fault tolerance across them: a supervisor on boss spawns a worker on
// farm with dist.SpawnLink, the worker fails, the supervisor (which traps
// exits) hears of it as *dist.Exited and spawns a new one; when boss
// stops, the worker it left on farm stops with it.
//
//	go run ./examples/links
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "links:", err)
		os.Exit(1)
	}
}

// crashes is how many times the demo makes the worker fail.
const crashes = 3

func run() error {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "cask-links-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := func(name string) actors.Config {
		return actors.Config{Name: name, Logger: quiet, Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}}
	}
	boss, err := actors.Start(ctx, cfg("boss@localhost"))
	if err != nil {
		return err
	}
	defer boss.Stop()
	farm, err := actors.Start(ctx, cfg("farm@localhost"))
	if err != nil {
		return err
	}
	defer farm.Stop()

	// farm lets boss, and only boss, spawn workers. A worker answers
	// "work" and panics on "crash"; its supervisor (the guardian below)
	// then stops it, which is an abnormal exit.
	stopOnFailure := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective })
	err = farm.RegisterKind("worker", actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			if m.Value == "crash" {
				panic("worker crashed on purpose")
			}
			c.Respond(wrapperspb.String("done by " + c.Self().Id))
		}
	}, actor.WithGuardian(stopOnFailure)), dist.AllowSpawnBy("boss@localhost"))
	if err != nil {
		return err
	}

	// The supervisor on boss traps exits: a linked worker's exit arrives
	// as *dist.Exited, and it spawns a replacement, linked again.
	workers := make(chan *actor.PID, 1)
	events := make(chan string, 16)
	boss.Root().Spawn(actors.TrapExits(actor.PropsFromFunc(func(c actor.Context) {
		spawn := func() {
			c.Request(boss.DistPID(), &dist.Spawn{Node: "farm@localhost", Kind: "worker", Link: c.Self()})
		}
		switch m := c.Message().(type) {
		case *actor.Started:
			spawn()
		case *dist.SpawnResult:
			if m.Err != nil {
				events <- "spawn failed: " + m.Err.Error()
				return
			}
			workers <- m.PID
		case *dist.Exited:
			events <- fmt.Sprintf("worker %s exited: %s (%s)", m.Who.Id, m.Reason, m.Detail)
			if m.Reason != dist.ExitNormal {
				spawn()
			}
		}
	})))

	for i := 0; i <= crashes; i++ {
		var w *actor.PID
		select {
		case w = <-workers:
		case e := <-events:
			return fmt.Errorf("no worker: %s", e)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("no worker within 5s")
		}
		reply, err := boss.Root().RequestFuture(w, wrapperspb.String("work"), 5*time.Second).Result()
		if err != nil {
			return fmt.Errorf("worker %s: %w", w.Id, err)
		}
		fmt.Printf("worker   %s on %s: %q\n", w.Id, w.Address, reply.(*wrapperspb.StringValue).Value)
		if i == crashes {
			// Stop boss: the worker it spawned on farm stops with it.
			gone := make(chan struct{})
			farm.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
				switch c.Message().(type) {
				case *actor.Started:
					c.Watch(actor.NewPID(w.Address, w.Id))
				case *actor.Terminated:
					close(gone)
				}
			}))
			fmt.Println("stop     boss (its worker on farm is linked with its supervisor)")
			boss.Stop()
			select {
			case <-gone:
				fmt.Printf("farm     worker %s stopped with boss\n", w.Id)
			case <-time.After(5 * time.Second):
				return fmt.Errorf("worker %s outlived boss", w.Id)
			}
			break
		}
		fmt.Printf("crash    %s\n", w.Id)
		boss.Root().Send(w, wrapperspb.String("crash"))
		select {
		case e := <-events:
			fmt.Println("exit    ", e)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("the supervisor did not hear of the crash within 5s")
		}
	}
	return nil
}
