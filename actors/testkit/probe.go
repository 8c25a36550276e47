package testkit

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// ErrTimeout is returned by [Probe.GetNextMessage] when no message arrived
// in time. The returned error wraps it and names the timeout.
var ErrTimeout = errors.New("testkit: timed out waiting for message")

// Probe is an actor driven from a test. Messages sent to [Probe.PID] are
// queued (without bound, so the probe never blocks the actor system) until
// the test takes them with one of the Expect methods or
// [Probe.GetNextMessage].
//
// The lifecycle messages the probe receives about itself (*actor.Started,
// *actor.Stopping, *actor.Stopped, *actor.Restarting) are dropped; every
// other message, including *actor.Terminated for watched actors, is queued.
//
// Send, Request, Respond, Watch and Unwatch may be called from any
// goroutine. The methods that take messages from the queue (the Expect
// methods, GetNextMessage and FishForMessage) are meant for one goroutine at a
// time, normally the one running the test: those that fail the test call
// t.Fatalf, which must run on that goroutine.
type Probe struct {
	t      testing.TB
	system *actor.ActorSystem
	pid    *actor.PID
	inbox  *inbox

	stopOnce sync.Once

	mu         sync.Mutex
	lastSender *actor.PID // sender of the message most recently taken from the inbox
}

// NewProbe spawns a probe actor on system and registers a t.Cleanup that
// stops it.
func NewProbe(t testing.TB, system *actor.ActorSystem) *Probe {
	t.Helper()

	in := newInbox()
	p := &Probe{
		t:      t,
		system: system,
		inbox:  in,
		pid:    system.Root.SpawnPrefix(actor.PropsFromFunc(in.receive), "testkit-probe"),
	}
	t.Cleanup(p.Stop)

	return p
}

// PID is the probe's address. Messages sent to it are queued for the test.
func (p *Probe) PID() *actor.PID { return p.pid }

// Send delivers msg to pid with no sender, as the root context does.
func (p *Probe) Send(pid *actor.PID, msg any) {
	p.system.Root.Send(pid, msg)
}

// Request delivers msg to pid with the probe as the sender, so that a
// ctx.Respond in the target arrives in the probe's queue.
func (p *Probe) Request(pid *actor.PID, msg any) {
	p.system.Root.RequestWithCustomSender(pid, msg, p.pid)
}

// Respond sends msg to the sender of the message most recently taken from
// the queue, with the probe as the sender. It fails the test if that message
// had no sender.
func (p *Probe) Respond(msg any) {
	p.t.Helper()

	sender := p.Sender()
	if sender == nil {
		p.t.Fatalf("testkit: Respond(%T): the last message had no sender", msg)
		return
	}
	p.Request(sender, msg)
}

// Sender is the sender of the message most recently taken from the queue,
// or nil if it had none or nothing has been taken yet.
func (p *Probe) Sender() *actor.PID {
	p.mu.Lock()
	defer p.mu.Unlock()

	return p.lastSender
}

// GetNextMessage takes the next message from the queue, waiting up to
// timeout for one to arrive. On timeout it returns an error wrapping
// [ErrTimeout] and does not fail the test.
//
// As everywhere on a probe (the Expect methods and FishForMessage wait
// through GetNextMessage), a zero timeout means [DefaultTimeout], as in
// upstream protoactor-go, and a negative one means no wait: take a message
// only if one is already queued.
func (p *Probe) GetNextMessage(timeout time.Duration) (any, error) {
	return p.next(orDefault(timeout))
}

// next is GetNextMessage without the default: a zero timeout means no wait.
func (p *Probe) next(timeout time.Duration) (any, error) {
	env, ok := p.inbox.pop(timeout)
	if !ok {
		return nil, fmt.Errorf("%w (%v)", ErrTimeout, timeout)
	}
	p.mu.Lock()
	p.lastSender = env.sender
	p.mu.Unlock()

	return env.message, nil
}

// ExpectMsg takes the next message from the queue, waiting up to timeout.
// It fails the test and returns nil if none arrives.
func (p *Probe) ExpectMsg(timeout time.Duration) any {
	p.t.Helper()

	msg, err := p.GetNextMessage(timeout)
	if err != nil {
		p.t.Fatalf("testkit: ExpectMsg: %v", err)
		return nil
	}

	return msg
}

// ExpectMsgType takes the next message from p's queue, waiting up to
// timeout, and returns it as a T. It fails the test and returns the zero T if
// no message arrives or the message is not a T.
func ExpectMsgType[T any](p *Probe, timeout time.Duration) T {
	p.t.Helper()

	var zero T
	msg, err := p.GetNextMessage(timeout)
	if err != nil {
		p.t.Fatalf("testkit: ExpectMsgType[%T]: %v", zero, err)
		return zero
	}
	typed, ok := msg.(T)
	if !ok {
		p.t.Fatalf("testkit: ExpectMsgType[%T]: got %T: %v", zero, msg, msg)
		return zero
	}

	return typed
}

// ExpectNoMessage waits for d (zero means [DefaultTimeout]) and fails the
// test if a message arrives in that time. A message that does arrive is
// taken from the queue.
func (p *Probe) ExpectNoMessage(d time.Duration) {
	p.t.Helper()

	msg, err := p.GetNextMessage(d)
	if err == nil {
		p.t.Fatalf("testkit: ExpectNoMessage: got %T: %v", msg, msg)
	}
}

// FishForMessage takes messages from the queue, discarding them, until one
// satisfies match, and returns that one. timeout bounds the whole search
// (zero means [DefaultTimeout]). It fails the test and returns nil if no
// matching message arrives in time. The package function [FishForMessage]
// is upstream's typed variant, which returns an error instead.
func (p *Probe) FishForMessage(timeout time.Duration, match func(msg any) bool) any {
	p.t.Helper()

	timeout = orDefault(timeout)
	deadline := time.Now().Add(timeout)
	skipped := 0
	for {
		msg, err := p.next(time.Until(deadline))
		if err != nil {
			p.t.Fatalf("testkit: FishForMessage: no match within %v after skipping %d messages: %v", timeout, skipped, err)
			return nil
		}
		if match(msg) {
			return msg
		}
		skipped++
	}
}

// Watch makes the probe watch pid, so that an *actor.Terminated arrives in
// the queue when pid stops. The watch request is posted to pid before Watch
// returns, so it is ordered before any message this goroutine sends to pid
// afterwards. Watching a pid that is already gone yields a Terminated with
// reason NotFound.
func (p *Probe) Watch(pid *actor.PID) {
	p.sendSystemMessage(pid, &actor.Watch{Watcher: p.pid})
}

// Unwatch undoes [Probe.Watch]. A Terminated already queued stays queued.
func (p *Probe) Unwatch(pid *actor.PID) {
	p.sendSystemMessage(pid, &actor.Unwatch{Watcher: p.pid})
}

func (p *Probe) sendSystemMessage(pid *actor.PID, msg any) {
	// The registry resolves local and remote PIDs alike; an unknown PID
	// resolves to the dead-letter process, which answers a Watch with a
	// Terminated.
	process, _ := p.system.ProcessRegistry.Get(pid)
	process.SendSystemMessage(pid, msg)
}

// ExpectTerminated takes the next message from the queue, waiting up to
// timeout, and checks that it is the *actor.Terminated for pid. It fails the
// test and returns nil otherwise. Use [Probe.FishForMessage] when other
// messages may come first.
func (p *Probe) ExpectTerminated(pid *actor.PID, timeout time.Duration) *actor.Terminated {
	p.t.Helper()

	msg, err := p.GetNextMessage(timeout)
	if err != nil {
		p.t.Fatalf("testkit: ExpectTerminated(%v): %v", pid, err)
		return nil
	}
	terminated, ok := msg.(*actor.Terminated)
	if !ok {
		p.t.Fatalf("testkit: ExpectTerminated(%v): got %T: %v", pid, msg, msg)
		return nil
	}
	if !terminated.Who.Equal(pid) {
		p.t.Fatalf("testkit: ExpectTerminated(%v): got Terminated for %v", pid, terminated.Who)
		return nil
	}

	return terminated
}

// Stop stops the probe actor and waits (at most protoactor's StopFuture
// deadline of 10s) for it to finish stopping; a probe that does not stop
// fails the test. Messages still queued stay readable. NewProbe registers
// Stop with t.Cleanup; it is safe to call again.
func (p *Probe) Stop() {
	p.stopOnce.Do(func() {
		if err := p.system.Root.StopFuture(p.pid).Wait(); err != nil {
			p.t.Errorf("testkit: stopping probe %v: %v", p.pid, err)
		}
	})
}

// envelope is one queued message with its sender.
type envelope struct {
	message any
	sender  *actor.PID
}

// inbox is the hand-off between the probe actor (producer, on its mailbox's
// dispatcher goroutine) and the test (consumer). The queue is unbounded so
// the producer never blocks; wake has room for one signal, so a push while
// nobody waits is not lost and the single consumer never misses one.
type inbox struct {
	mu    sync.Mutex
	queue []envelope
	wake  chan struct{}
}

func newInbox() *inbox {
	return &inbox{wake: make(chan struct{}, 1)}
}

// receive is the probe actor's behaviour.
func (in *inbox) receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started, *actor.Stopping, *actor.Stopped, *actor.Restarting:
		return
	}
	in.push(envelope{message: ctx.Message(), sender: ctx.Sender()})
}

func (in *inbox) push(env envelope) {
	in.mu.Lock()
	in.queue = append(in.queue, env)
	in.mu.Unlock()

	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// pop takes the oldest envelope, waiting up to timeout for one.
func (in *inbox) pop(timeout time.Duration) (envelope, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	for {
		in.mu.Lock()
		if len(in.queue) > 0 {
			env := in.queue[0]
			in.queue[0] = envelope{}
			in.queue = in.queue[1:]
			in.mu.Unlock()
			return env, true
		}
		in.mu.Unlock()

		select {
		case <-in.wake:
		case <-timer.C:
			return envelope{}, false
		}
	}
}
