package dist_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
)

func TestZZStack(t *testing.T) {
	dir := t.TempDir()
	start := func(name string) *actors.Node {
		n, err := actors.Start(context.Background(), actors.Config{Name: name, DiscoveryDir: dir, DisableDNS: true, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop() })
		return n
	}
	a, e := start("a@localhost"), start("b@localhost")
	_ = e
	a.Connect(context.Background(), "b@localhost")
	target := actor.NewPID("b@localhost", "nobody")
	sender := actor.NewPID("a@localhost", "someone")
	measure := func(name string, f func()) {
		const n = 2000
		var ready, hold sync.WaitGroup
		hold.Add(1)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		for i := 0; i < n; i++ {
			ready.Add(1)
			go func() {
				f()
				ready.Done()
				hold.Wait()
			}()
		}
		ready.Wait()
		runtime.ReadMemStats(&m1)
		hold.Done()
		fmt.Printf("%-10s %6d bytes of stack per goroutine\n", name, (m1.StackInuse-m0.StackInuse)/n)
	}
	msg := wrapperspb.Int64(7)
	measure("idle", func() {})
	for _, pad := range []int{0, 512, 1024, 1536, 2048, 2560} {
		measure(fmt.Sprintf("send+%d", pad), func() {
			padded(pad, func() {
				e := &actor.MessageEnvelope{Message: msg, Sender: sender}
				proc, _ := a.System().ProcessRegistry.Get(target)
				proc.SendUserMessage(target, e)
			})
		})
	}
}

//go:noinline
func padded(n int, f func()) {
	if n >= 512 {
		pad512(n-512, f)
		return
	}
	f()
}

//go:noinline
func pad512(n int, f func()) byte {
	var x [480]byte
	padded(n, f)
	return x[n%480]
}
