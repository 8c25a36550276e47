package bench

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The workload actors. They are plain protoactor actors and run unchanged
// on both actor systems; only the node underneath differs.

// echoActor answers every small message to its sender with the message
// it received.
type echoActor struct{}

func (echoActor) Receive(c actor.Context) {
	if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
		c.Respond(m)
	}
}

// kick starts a pinger or a bulk sender. It is only ever sent locally.
type kick struct{}

// progress is a snapshot of an actor's counters, asked for locally when a
// run times out.
type progress struct{ sent, received int64 }

type askProgress struct{}

// pingerActor keeps up to window requests outstanding to target and sends
// the next as each reply arrives, until total replies have come back.
type pingerActor struct {
	target        *actor.PID
	total, window int64
	sent, recv    int64
	done          chan struct{}
}

func (p *pingerActor) send(c actor.Context) {
	p.sent++
	c.Request(p.target, &wrapperspb.Int64Value{Value: p.sent})
}

func (p *pingerActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case kick:
		for p.sent < p.total && p.sent < p.window {
			p.send(c)
		}
	case *wrapperspb.Int64Value:
		p.recv++
		if p.sent < p.total {
			p.send(c)
		}
		if p.recv == p.total {
			close(p.done)
		}
	case askProgress:
		c.Respond(progress{sent: p.sent, received: p.recv})
	}
}

// sinkActor counts the bytes of the BytesValue messages it receives and
// acknowledges every ackEvery messages with the running message count.
type sinkActor struct {
	ackEvery int64
	msgs     int64
	bytes    int64
}

func (s *sinkActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *wrapperspb.BytesValue:
		s.msgs++
		s.bytes += int64(len(m.Value))
		if s.msgs%s.ackEvery == 0 {
			c.Respond(&wrapperspb.Int64Value{Value: s.msgs})
		}
	case askProgress:
		c.Respond(progress{received: s.msgs})
	}
}

// blasterActor sends total BytesValue messages to target, never more than
// window beyond the last acknowledged count.
type blasterActor struct {
	target        *actor.PID
	payload       []byte
	total, window int64
	sent, acked   int64
	done          chan struct{}
}

func (b *blasterActor) fill(c actor.Context) {
	for b.sent < b.total && b.sent-b.acked < b.window {
		b.sent++
		c.Request(b.target, &wrapperspb.BytesValue{Value: b.payload})
	}
}

func (b *blasterActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case kick:
		b.fill(c)
	case *wrapperspb.Int64Value:
		if m.Value > b.acked {
			b.acked = m.Value
		}
		b.fill(c)
		if b.acked >= b.total {
			select {
			case <-b.done:
			default:
				close(b.done)
			}
		}
	case askProgress:
		c.Respond(progress{sent: b.sent, received: b.acked})
	}
}

// pipeSenderActor sends total Int64Value messages, numbered from 1, to
// target without waiting for anything, each with replyTo as its sender,
// so an echo passes them on to replyTo. It sends chunk messages per turn
// and kicks itself for the next chunk, so it still answers askProgress
// while it sends.
type pipeSenderActor struct {
	target, replyTo *actor.PID
	total, chunk    int64
	sent            int64
}

func (p *pipeSenderActor) Receive(c actor.Context) {
	switch c.Message().(type) {
	case kick:
		for end := min(p.sent+p.chunk, p.total); p.sent < end; {
			p.sent++
			c.RequestWithCustomSender(p.target, &wrapperspb.Int64Value{Value: p.sent}, p.replyTo)
		}
		if p.sent < p.total {
			c.Send(c.Self(), kick{})
		}
	case askProgress:
		c.Respond(progress{sent: p.sent})
	}
}

// countSinkActor counts the Int64Value messages it receives, expects them
// numbered 1, 2, 3, ... in order, and closes done when total have come.
// Its verdict, written before done is closed, is disorder: empty, or the
// first message that came out of turn. Messages after the total are not
// looked at.
type countSinkActor struct {
	total, got int64
	disorder   string
	done       chan struct{}
}

func (s *countSinkActor) Receive(c actor.Context) {
	switch m := c.Message().(type) {
	case *wrapperspb.Int64Value:
		if s.got == s.total {
			return
		}
		s.got++
		if m.Value != s.got && s.disorder == "" {
			s.disorder = fmt.Sprintf("message %d arrived as number %d", m.Value, s.got)
		}
		if s.got == s.total {
			close(s.done)
		}
	case askProgress:
		c.Respond(progress{received: s.got})
	}
}
