package testkit

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// This file is upstream protoactor-go's test probe API (package
// github.com/asynkron/protoactor-go/testkit), with its names, signatures
// and semantics, so that tests written against it port by changing the
// import path. docs/testing.md has the porting table and the few
// differences.

// DefaultTimeout is what a zero timeout means to the probes' waits
// ([TestProbe.GetNextMessage], [Probe.GetNextMessage] and the functions
// built on them), [RequestFuture] and [AwaitCondition]: one second, as in
// upstream protoactor-go's testkit.
const DefaultTimeout = time.Second

// ErrUnexpectedMessage is returned, wrapped, by the [TestProbe] functions
// when a message arrived that the call did not allow: one of another type,
// one that fails the condition, or any message in
// [TestProbe.ExpectNoMessage].
var ErrUnexpectedMessage = errors.New("testkit: unexpected message")

// TestProbe is upstream protoactor-go's probe: an actor.Actor that the test
// spawns itself, on any actor system (a local one or a Cask node's), and
// whose received messages it then takes in order:
//
//	probe := testkit.NewTestProbe()
//	system.Root.Spawn(actor.PropsFromFunc(probe.Receive))
//	probe.Request(target, &Ping{})
//	pong, err := testkit.GetNextMessageOf[*Pong](probe, 0) // 0 means one second
//
// Every message the probe receives is queued, including its own
// *actor.Stopping and *actor.Stopped, except *actor.Started, which the
// probe keeps as its [TestProbe.Context]. The queue has no bound, so the
// probe never holds up the actor system.
//
// Nothing here fails the test: every wait returns an error instead, wrapping
// [ErrTimeout] when nothing came in time and [ErrUnexpectedMessage] when
// the wrong thing came. The functions that take messages from the queue
// (GetNextMessage, ExpectNoMessage, GetNextMessageOf, GetNextMessageWhere,
// FishForMessage, FishForMessageOf) are meant for one goroutine at a time;
// Send, Request, Respond and RequestFuture may run on any goroutine.
//
// For a probe that fails the test itself, watches actors and needs no
// spawning, see [Probe].
type TestProbe struct {
	inbox     *inbox
	started   chan struct{} // closed when the probe has handled *actor.Started
	startOnce sync.Once

	mu     sync.Mutex
	ctx    actor.Context // the probe's context, from its *actor.Started
	sender *actor.PID    // sender of the message most recently taken
}

var _ actor.Actor = (*TestProbe)(nil)

// NewTestProbe returns a probe that is not yet an actor: spawn it with
// actor.PropsFromFunc(probe.Receive) or a producer returning it. Spawn it
// once; a second spawn would make both actors feed one queue.
func NewTestProbe() *TestProbe {
	return &TestProbe{inbox: newInbox(), started: make(chan struct{})}
}

// Receive implements actor.Actor. It runs on the probe's mailbox goroutine
// and never blocks.
func (tp *TestProbe) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(*actor.Started); ok {
		tp.mu.Lock()
		tp.ctx = ctx
		tp.mu.Unlock()
		tp.startOnce.Do(func() { close(tp.started) })
		return
	}
	tp.inbox.push(envelope{message: ctx.Message(), sender: ctx.Sender()})
}

// Context is the probe actor's context; Context().Self() is its PID.
// Spawning returns before the probe has started, so Context waits up to
// [DefaultTimeout] for it to start, and panics if it has not (the probe was
// never spawned), as upstream panics.
//
// From the test, send with the probe's Send, Request and [RequestFuture]
// rather than with the context's own methods: protoactor means those for
// the actor's goroutine, and upstream's probe calls them from the test's.
func (tp *TestProbe) Context() actor.Context {
	timer := time.NewTimer(DefaultTimeout)
	defer timer.Stop()

	select {
	case <-tp.started:
	case <-timer.C:
		panic("testkit: TestProbe.Context: the probe has not started; spawn it with actor.PropsFromFunc(probe.Receive)")
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()

	return tp.ctx
}

// PID is the probe's address, Context().Self(). (Not in upstream, which
// spells it out.)
func (tp *TestProbe) PID() *actor.PID { return tp.Context().Self() }

// Sender is the sender of the message most recently taken from the queue
// by GetNextMessage (or a function built on it) or matched by a Fish
// function; nil if it had none or nothing has been taken yet.
func (tp *TestProbe) Sender() *actor.PID {
	tp.mu.Lock()
	defer tp.mu.Unlock()

	return tp.sender
}

// Send delivers message to target with no sender.
func (tp *TestProbe) Send(target *actor.PID, message any) {
	tp.root().Send(target, message)
}

// Request delivers message to target with the probe as the sender, so
// that the target's ctx.Respond lands in the probe's queue.
func (tp *TestProbe) Request(target *actor.PID, message any) {
	tp.root().RequestWithCustomSender(target, message, tp.PID())
}

// Respond sends message, with no sender, to the sender of the message most
// recently taken from the queue ([TestProbe.Sender]). If that message had
// no sender, Respond does nothing, as upstream.
func (tp *TestProbe) Respond(message any) {
	if sender := tp.Sender(); sender != nil {
		tp.Send(sender, message)
	}
}

// GetNextMessage takes the next message from the queue, waiting up to
// timeAllowed for one; zero means [DefaultTimeout], a negative value means
// no wait. On timeout it returns an error wrapping [ErrTimeout].
func (tp *TestProbe) GetNextMessage(timeAllowed time.Duration) (any, error) {
	timeAllowed = orDefault(timeAllowed)
	env, ok := tp.inbox.pop(timeAllowed)
	if !ok {
		return nil, fmt.Errorf("%w: none within %v", ErrTimeout, timeAllowed)
	}
	tp.setSender(env.sender)

	return env.message, nil
}

// ExpectNoMessage waits timeAllowed (zero means [DefaultTimeout]) and
// returns nil if no message arrived meanwhile. A message that does arrive
// is taken from the queue and reported at once in an error wrapping
// [ErrUnexpectedMessage]; Sender is left as it was.
func (tp *TestProbe) ExpectNoMessage(timeAllowed time.Duration) error {
	timeAllowed = orDefault(timeAllowed)
	env, ok := tp.inbox.pop(timeAllowed)
	if ok {
		return fmt.Errorf("%w: waiting %v for silence, got %T: %v", ErrUnexpectedMessage, timeAllowed, env.message, env.message)
	}

	return nil
}

// GetNextMessageOf takes the next message from tp's queue, as
// [TestProbe.GetNextMessage], and returns it as a T. A message of another
// type is taken all the same and reported in an error wrapping
// [ErrUnexpectedMessage].
func GetNextMessageOf[T any](tp *TestProbe, timeAllowed time.Duration) (T, error) {
	var zero T
	msg, err := tp.GetNextMessage(timeAllowed)
	if err != nil {
		return zero, err
	}
	typed, ok := msg.(T)
	if !ok {
		return zero, fmt.Errorf("%w: want %T, got %T: %v", ErrUnexpectedMessage, zero, msg, msg)
	}

	return typed, nil
}

// GetNextMessageWhere is [GetNextMessageOf] that also requires when to
// hold for the message; if it does not, the message is taken all the same
// and the error wraps [ErrUnexpectedMessage].
func GetNextMessageWhere[T any](tp *TestProbe, when func(T) bool, timeAllowed time.Duration) (T, error) {
	var zero T
	msg, err := GetNextMessageOf[T](tp, timeAllowed)
	if err != nil {
		return zero, err
	}
	if !when(msg) {
		return zero, fmt.Errorf("%w: %T %v does not meet the condition", ErrUnexpectedMessage, msg, msg)
	}

	return msg, nil
}

// FishForMessage takes messages from tp's queue, dropping every one that is
// not a T for which when holds, until one is; it returns that one and makes
// its sender tp's Sender. timeAllowed bounds the whole search (zero means
// [DefaultTimeout]); when it runs out the error wraps [ErrTimeout].
func FishForMessage[T any](tp *TestProbe, when func(T) bool, timeAllowed time.Duration) (T, error) {
	var zero T
	timeAllowed = orDefault(timeAllowed)
	deadline := time.Now().Add(timeAllowed)
	dropped := 0
	for remaining := timeAllowed; remaining > 0; remaining = time.Until(deadline) {
		env, ok := tp.inbox.pop(remaining)
		if !ok {
			break
		}
		if typed, ok := env.message.(T); ok && when(typed) {
			tp.setSender(env.sender)
			return typed, nil
		}
		dropped++
	}

	return zero, fmt.Errorf("%w: no matching %T within %v (%d other messages dropped)", ErrTimeout, zero, timeAllowed, dropped)
}

// FishForMessageOf is [FishForMessage] for the first message that is a T.
func FishForMessageOf[T any](tp *TestProbe, timeAllowed time.Duration) (T, error) {
	return FishForMessage(tp, func(T) bool { return true }, timeAllowed)
}

// RequestFuture sends message to target with a future as the sender and
// waits up to timeout (zero means [DefaultTimeout]; upstream's future would
// time out at once) for the reply, which must be a T. The future's own
// errors (actor.ErrTimeout, actor.ErrDeadLetter) are returned wrapped; a
// reply of another type gives an error wrapping [ErrUnexpectedMessage]. The
// reply goes to the future, not to the probe's queue.
func RequestFuture[T any](tp *TestProbe, target *actor.PID, message any, timeout time.Duration) (T, error) {
	var zero T
	res, err := tp.root().RequestFuture(target, message, orDefault(timeout)).Result()
	if err != nil {
		return zero, fmt.Errorf("testkit: RequestFuture %T to %v: %w", message, target, err)
	}
	typed, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("%w: reply to %T: want %T, got %T: %v", ErrUnexpectedMessage, message, zero, res, res)
	}

	return typed, nil
}

// root is the root context of the probe's actor system. Sends go through it
// rather than the probe's own context, whose methods are meant for the
// actor's goroutine, not the test's.
func (tp *TestProbe) root() *actor.RootContext {
	return tp.Context().ActorSystem().Root
}

func (tp *TestProbe) setSender(sender *actor.PID) {
	tp.mu.Lock()
	tp.sender = sender
	tp.mu.Unlock()
}

func orDefault(timeout time.Duration) time.Duration {
	if timeout == 0 {
		return DefaultTimeout
	}

	return timeout
}
