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

	// An actor on alice watches the greeter and monitors bob. The watch
	// and a request after it travel on the greeter's stream, in order, so
	// the reply proves the watch arrived before anything below stops the
	// greeter.
	events := make(chan string, 8)
	watcher, err := watchRemote(alice, remote, wrapperspb.String("again"), events)
	if err != nil {
		return err
	}
	alice.MonitorNode("bob@localhost", watcher)
	fmt.Println("watch    stopping the greeter on bob")
	bob.Root().Stop(greeter)
	if err := expectAll(events, "Terminated{Who: bob@localhost/greeter, Why: Stopped}"); err != nil {
		return err
	}

	// Watch another actor, then take the whole node away: the watcher
	// hears about both the actor and the node.
	if _, err := bob.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("here"))
		}
	}), "other"); err != nil {
		return err
	}
	if _, err := watchRemote(alice, actor.NewPID("bob@localhost", "other"), wrapperspb.String("ping"), events); err != nil {
		return err
	}
	fmt.Println("node     stopping bob")
	bob.Stop()
	if err := expectAll(events, "NodeDown", "Terminated"); err != nil {
		return err
	}
	fmt.Printf("nodes    alice now has sessions to %v\n", alice.Nodes())
	return nil
}

// watchRemote spawns an actor on node that watches target and reports
// Terminated and NodeDown to events. It returns once the watch is in
// place: the actor sends ask to target right after Watch, and the reply,
// which comes back on the same stream, cannot overtake the watch.
func watchRemote(node *actors.Node, target *actor.PID, ask any, events chan<- string) (*actor.PID, error) {
	ready := make(chan error, 1)
	pid := node.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *actor.Started:
			c.Watch(target)
			c.Request(target, ask)
		case *wrapperspb.StringValue:
			ready <- nil
		case *actor.Terminated:
			events <- fmt.Sprintf("Terminated{Who: %s, Why: %s}", pidString(m.Who), m.Why)
		case *dist.NodeDown:
			events <- fmt.Sprintf("NodeDown{Node: %s, Reason: %s}", m.Node, m.Reason)
		}
	}))
	select {
	case err := <-ready:
		return pid, err
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("watch of %s not confirmed within 5s", pidString(target))
	}
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
