//go:build !race

// The race detector instruments every frame, so stack sizes under -race
// say nothing about a normal build.

package dist_test

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// TestSendPathStackDepth guards the latency fix in endpoint.send:
// protoactor runs each burst of an actor's messages on a new goroutine
// with a 2 KiB stack, and a remote send from it must not push that stack
// past 4 KiB, where one more doubling (a full stack copy) costs the
// sender microseconds per request. The test sends from 2,000 fresh
// goroutines, each already 1.5 KiB deep (about what protoactor's mailbox
// loop and a small Receive use), and reads the stack memory they hold.
func TestSendPathStackDepth(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}})
	startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DiscoveryDir: dir, DisableDNS: true}})
	if err := a.Connect(context.Background(), "b@localhost"); err != nil {
		t.Fatal(err)
	}
	target := actor.NewPID("b@localhost", "nobody")
	sender := actor.NewPID("a@localhost", "someone")
	msg := wrapperspb.Int64(7)
	send := func() {
		proc, _ := a.System().ProcessRegistry.Get(target)
		proc.SendUserMessage(target, &actor.MessageEnvelope{Message: msg, Sender: sender})
	}
	send() // the stream writer starts on first use
	perGoroutine := func(f func()) uint64 {
		const n = 2000
		var ready, hold sync.WaitGroup
		hold.Add(1)
		defer hold.Done()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			ready.Add(1)
			go func() {
				f()
				ready.Done()
				hold.Wait()
			}()
		}
		ready.Wait()
		runtime.ReadMemStats(&after)
		return (after.StackInuse - before.StackInuse) / n
	}
	idle := perGoroutine(func() {})
	deep := perGoroutine(func() { withFrames(3, send) })
	t.Logf("stack per goroutine: idle %d bytes, sending 1.5 KiB deep %d bytes", idle, deep)
	if deep > 6<<10 {
		t.Fatalf("a send from a goroutine 1.5 KiB deep needs %d bytes of stack per goroutine; want at most 4 KiB (the send path got deeper)", deep)
	}
	// The measurement itself must be able to see a deeper stack.
	if deeper := perGoroutine(func() { withFrames(6, send) }); deeper <= 6<<10 {
		t.Fatalf("a send 3 KiB deep measured %d bytes per goroutine; the measurement cannot tell stack sizes apart", deeper)
	}
}

// withFrames calls f under n frames of about 512 bytes each.
//
//go:noinline
func withFrames(n int, f func()) {
	if n > 0 {
		frame512(n-1, f)
		return
	}
	f()
}

//go:noinline
func frame512(n int, f func()) byte {
	var pad [480]byte
	withFrames(n, f)
	return pad[n%len(pad)]
}
