// Command hello runs two Cask nodes in one process and shows a remote
// request, a remote watch, and what a watcher sees when a node goes away.
//
//	go run ./examples/hello
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "cask-hello-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Two nodes find each other through a directory of endpoint files.
	alice, err := actors.Start(ctx, actors.Config{Name: "alice@localhost", Logger: quiet, Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}})
	if err != nil {
		return err
	}
	defer alice.Stop()
	bob, err := actors.Start(ctx, actors.Config{Name: "bob@localhost", Logger: quiet, Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}})
	if err != nil {
		return err
	}
	defer bob.Stop()
	fmt.Printf("started %s on %s and %s on %s\n", alice.Name(), alice.Addr(), bob.Name(), bob.Addr())

	// An ordinary protoactor actor on bob.
	greeter, err := bob.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("hello, " + m.Value + " (from " + c.Self().Address + ")"))
		}
	}), "greeter")
	if err != nil {
		return err
	}

	// alice asks it with the usual API; the PID names the node, not an IP.
	remote := actor.NewPID("bob@localhost", "greeter")
	start := time.Now()
	reply, err := alice.Root().RequestFuture(remote, wrapperspb.String("alice"), 5*time.Second).Result()
	if err != nil {
		return fmt.Errorf("remote request: %w", err)
	}
	fmt.Printf("request  %s → %q (first call, session opened on demand, %v)\n",
		pidString(remote), reply.(*wrapperspb.StringValue).Value, time.Since(start).Round(time.Microsecond))

	// An actor on alice watches the greeter and monitors bob.
	events := make(chan string, 8)
	watcher := alice.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(remote)
		case *actor.Terminated:
			events <- fmt.Sprintf("Terminated{Who: %s, Why: %s}", pidString(m.Who), m.Why)
		case *dist.NodeDown:
			events <- fmt.Sprintf("NodeDown{Node: %s, Reason: %s}", m.Node, m.Reason)
		}
	}))
	alice.MonitorNode("bob@localhost", watcher)
	// The watch travels on the greeter's stream, so a round trip after it
	// proves it arrived.
	if _, err := alice.Root().RequestFuture(remote, wrapperspb.String("again"), 5*time.Second).Result(); err != nil {
		return err
	}

	fmt.Println("watch    stopping the greeter on bob")
	bob.Root().Stop(greeter)
	if err := expectAll(events, "Terminated"); err != nil {
		return err
	}

	// Watch another actor, then take the whole node away: the watcher
	// hears about both the actor and the node.
	if _, err := bob.Root().SpawnNamed(actor.PropsFromFunc(func(actor.Context) {}), "other"); err != nil {
		return err
	}
	otherRemote := actor.NewPID("bob@localhost", "other")
	alice.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(otherRemote)
		case *actor.Terminated:
			events <- fmt.Sprintf("Terminated{Who: %s, Why: %s}", pidString(m.Who), m.Why)
		}
	}))
	// Give the watch a moment to cross before the node goes.
	time.Sleep(50 * time.Millisecond)
	fmt.Println("node     stopping bob")
	bob.Stop()
	if err := expectAll(events, "NodeDown", "Terminated"); err != nil {
		return err
	}
	fmt.Printf("nodes    alice now has sessions to %v\n", alice.Nodes())
	return nil
}

// expectAll prints events until one starting with each prefix arrived.
func expectAll(events <-chan string, prefixes ...string) error {
	deadline := time.After(10 * time.Second)
	missing := map[string]bool{}
	for _, p := range prefixes {
		missing[p] = true
	}
	for len(missing) > 0 {
		select {
		case e := <-events:
			fmt.Println("event   ", e)
			for p := range missing {
				if strings.HasPrefix(e, p) {
					delete(missing, p)
				}
			}
		case <-deadline:
			return fmt.Errorf("still waiting for %v after 10s", missing)
		}
	}
	return nil
}

func pidString(p *actor.PID) string { return p.Address + "/" + p.Id }
