// Command messages shows an application's own protobuf messages crossing
// Cask nodes: greet.proto defines them, greetpb is generated from it
// without a system protoc, and a greeter on one node answers requests from
// another.
//
//	go run ./examples/messages
//
// To regenerate greetpb after editing greet.proto:
//
//	go generate ./examples/messages
package main

//go:generate go run ../../cmd/cask-protogen -module github.com/cask-p2p/cask/examples/messages

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/examples/messages/greetpb"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "messages:", err)
		os.Exit(1)
	}
}

// greeter answers *greetpb.Greet with *greetpb.Greeting in the first
// language it speaks, counting its greetings.
type greeter struct{ count uint64 }

var hello = map[string]string{"fr": "bonjour", "de": "hallo", "en": "hello"}

func (g *greeter) Receive(c actor.Context) {
	if m, ok := c.Message().(*greetpb.Greet); ok {
		g.count++
		lang := "en"
		for _, l := range m.GetLanguages() {
			if _, ok := hello[l]; ok {
				lang = l
				break
			}
		}
		c.Respond(&greetpb.Greeting{Text: hello[lang] + ", " + m.GetWho(), Language: lang, Count: g.count})
	}
}

func run(out io.Writer) error {
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := actors.Start(ctx, actors.Config{Name: "b@localhost", Logger: quiet, Dist: dist.Config{DisableDNS: true}})
	if err != nil {
		return err
	}
	defer b.Stop()
	if _, err := b.Root().SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &greeter{} }), "greeter"); err != nil {
		return err
	}
	a, err := actors.Start(ctx, actors.Config{Name: "a@localhost", Logger: quiet,
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{b.Name(): b.Addr().String()}}})
	if err != nil {
		return err
	}
	defer a.Stop()

	greeterPID := actor.NewPID(b.Name(), "greeter")
	for _, ask := range []*greetpb.Greet{
		{Who: "Ada", Languages: []string{"fr", "en"}},
		{Who: "Linus", Languages: []string{"fi", "de"}},
		{Who: "Grace"},
	} {
		reply, err := a.Root().RequestFuture(greeterPID, ask, 5*time.Second).Result()
		if err != nil {
			return fmt.Errorf("greet %s: %w", ask.GetWho(), err)
		}
		g, ok := reply.(*greetpb.Greeting)
		if !ok {
			return fmt.Errorf("greet %s: got %T, want *greetpb.Greeting", ask.GetWho(), reply)
		}
		fmt.Fprintf(out, "%s → %q (%s, greeting #%d)\n", ask.GetWho(), g.GetText(), g.GetLanguage(), g.GetCount())
	}
	return nil
}
