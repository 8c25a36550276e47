package bench

import (
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// BenchmarkLocalPingPong is pingpong-1's exchange (Request/Respond, 10,000
// in flight) with both actors in one actor system and no network: the
// ceiling any distribution layer works under on this machine.
//
//	go test ./bench -run '^$' -bench LocalPingPong -benchtime 2000000x
func BenchmarkLocalPingPong(b *testing.B) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	defer system.Shutdown()
	echo := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return echoActor{} }))
	var done sync.WaitGroup
	total, sent, got := 0, 0, 0
	pinger := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case kick:
			for sent < PingPongWindow && sent < total {
				sent++
				c.Request(echo, wrapperspb.Int64(int64(sent)))
			}
		case *wrapperspb.Int64Value:
			got++
			if sent < total {
				sent++
				c.Request(echo, wrapperspb.Int64(int64(sent)))
			}
			if got == total {
				done.Done()
			}
		}
	}))
	b.ResetTimer()
	total = b.N
	done.Add(1)
	system.Root.Send(pinger, kick{})
	done.Wait()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
