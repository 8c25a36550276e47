package bench

import (
	"sync"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
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
	localPingPong(b, system, func(*actor.PID) *actor.PID { return echo })
}

// BenchmarkCodecPingPong is BenchmarkLocalPingPong with every message
// passed through what any protobuf-based distribution layer must do at
// least once per message: encode it on the sender's goroutine, decode a
// fresh copy and post it to the target's mailbox with its sender. Nothing
// else: no framing, no streams, no goroutine hand-off, no QUIC. Its rate
// is what a remote ping-pong can reach on this machine, give or take the
// parallelism a layer gains by decoding on goroutines of its own
// (docs/performance.md, "the codec floor").
//
//	go test ./bench -run '^$' -bench CodecPingPong -benchtime 2000000x
func BenchmarkCodecPingPong(b *testing.B) {
	system := actor.NewActorSystem(actor.WithLoggerFactory(quietLogger))
	defer system.Shutdown()
	echo := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return echoActor{} }))
	localPingPong(b, system, func(pinger *actor.PID) *actor.PID {
		pingerProxy, _ := system.ProcessRegistry.Add(&codecProcess{b: b, system: system, target: pinger}, "codec-pinger")
		echoProxy, _ := system.ProcessRegistry.Add(&codecProcess{b: b, system: system, target: echo, replyTo: pingerProxy}, "codec-echo")
		return echoProxy
	})
}

// localPingPong spawns pingpong-1's pinger in system and times b.N round
// trips to the PID that route returns for it (route gets the pinger's
// own PID, to build a path back).
func localPingPong(b *testing.B, system *actor.ActorSystem, route func(pinger *actor.PID) *actor.PID) {
	var done sync.WaitGroup
	var to *actor.PID // set before the kick, read only after it
	total, sent, got := 0, 0, 0
	pinger := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case kick:
			for sent < PingPongWindow && sent < total {
				sent++
				c.Request(to, wrapperspb.Int64(int64(sent)))
			}
		case *wrapperspb.Int64Value:
			got++
			if sent < total {
				sent++
				c.Request(to, wrapperspb.Int64(int64(sent)))
			}
			if got == total {
				done.Done()
			}
		}
	}))
	to = route(pinger)
	b.ResetTimer()
	total = b.N
	done.Add(1)
	system.Root.Send(pinger, kick{})
	done.Wait()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// codecProcess stands for a remote actor: it encodes each message, decodes
// a fresh copy (type looked up once, no Reset, as Cask's reader does) and
// posts it to target, with replyTo as the sender when the message had one.
// Only the single actor that talks to it calls it, so mt needs no lock.
type codecProcess struct {
	b       *testing.B
	system  *actor.ActorSystem
	target  *actor.PID
	replyTo *actor.PID
	mt      protoreflect.MessageType // type of the last message; one sender goroutine at a time
}

func (p *codecProcess) SendUserMessage(_ *actor.PID, message any) {
	_, msg, sender := actor.UnwrapEnvelope(message)
	pm := msg.(proto.Message)
	data, err := proto.Marshal(pm)
	if err != nil {
		p.b.Error(err)
		return
	}
	name := pm.ProtoReflect().Descriptor().FullName()
	if p.mt == nil || p.mt.Descriptor().FullName() != name {
		if p.mt, err = protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
			p.b.Error(err)
			return
		}
	}
	fresh := p.mt.New().Interface()
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(data, fresh); err != nil {
		p.b.Error(err)
		return
	}
	if sender == nil {
		p.system.Root.Send(p.target, fresh)
		return
	}
	p.system.Root.Send(p.target, &actor.MessageEnvelope{Message: fresh, Sender: p.replyTo})
}

func (p *codecProcess) SendSystemMessage(*actor.PID, any) {}

func (p *codecProcess) Stop(*actor.PID) {}
