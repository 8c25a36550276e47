package actors_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// lockedBuffer is a bytes.Buffer safe for the loggers of two nodes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// At the default level a node logs what it does (start, sessions up and
// down, stop) and protoactor's Info lines (actor system started, dead
// letters) are left out.
func TestDefaultLogSaysWhatTheNodeDoes(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil)) // Info and above
	ctx := context.Background()
	b, err := actors.Start(ctx, actors.Config{Name: "b@localhost", Logger: logger, Dist: dist.Config{DisableDNS: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(m)
		}
	}), "echo"); err != nil {
		t.Fatal(err)
	}
	a, err := actors.Start(ctx, actors.Config{Name: "a@localhost", Logger: logger,
		Dist: dist.Config{DisableDNS: true, Peers: map[string]string{b.Name(): b.Addr().String()}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Root().RequestFuture(actor.NewPID(b.Name(), "echo"), wrapperspb.String("hi"), 5*time.Second).Result(); err != nil {
		t.Fatal(err)
	}
	// A dead letter: protoactor logs it at Info.
	a.Root().Send(actor.NewPID(a.Name(), "nobody"), wrapperspb.String("lost"))
	a.Stop()
	b.Stop()

	out := buf.String()
	for _, want := range []string{"node started", "session up", "session down", "node stopped"} {
		if strings.Count(out, "msg=\""+want+"\"")+strings.Count(out, "msg="+want) < 2 {
			t.Errorf("want %q from both nodes in the log:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "lib=protoactor") && strings.Contains(line, "level=INFO") {
			t.Errorf("protoactor Info line at the default level: %s", line)
		}
	}
	if n := strings.Count(out, "level=INFO"); n > 16 {
		t.Errorf("%d Info lines for two nodes, one request and a stop:\n%s", n, out)
	}
}
