package testkit

import (
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// MailboxStats records what happens to the messages of the actors spawned
// from props prepared by [WithStats]. It sees four moments in a message's
// life, each with its own name used throughout this package:
//
//   - Posted: the message was put into the actor's mailbox
//     ([MailboxStats.MessagePosted]). User and system messages alike.
//   - Delivered: the message is about to be handed to the actor's Receive
//     ([MailboxStats.ReceiverMiddleware]). Only messages Receive sees,
//     including *actor.Started, *actor.Stopping, *actor.Stopped and
//     *actor.Terminated.
//   - Received: the mailbox has finished handling the message
//     ([MailboxStats.MessageReceived]); for a user message, Receive has
//     returned. Not recorded when handling panics.
//   - Sent: the actor sent the message through its context
//     ([MailboxStats.SenderMiddleware]).
//
// Messages wrapped in an *actor.MessageEnvelope (requests) are recorded
// unwrapped, so predicates and [Count] see the payload.
//
// If the same props spawn several actors, one MailboxStats records them
// all. The zero value is ready to use; a MailboxStats must not be copied
// after first use. All methods are safe for concurrent use.
type MailboxStats struct {
	mu       sync.Mutex
	messages [numPhases][]any
	starts   int
	empties  int
	changed  chan struct{} // closed and replaced on every change; nil until first needed
}

// phase names one of the four recorded moments.
type phase int

const (
	posted phase = iota
	delivered
	received
	sent
	numPhases
)

var _ actor.MailboxMiddleware = (*MailboxStats)(nil)

// NewMailboxStats returns an empty MailboxStats.
func NewMailboxStats() *MailboxStats {
	return &MailboxStats{}
}

// WithStats returns a copy of props whose actors report to stats: the copy
// gets an unbounded mailbox with stats as its middleware (replacing any
// mailbox props had) and stats' receiver and sender middleware appended
// after props' own, so stats sees what the actor itself receives and what
// actually leaves it. props is not modified.
func WithStats(props *actor.Props, stats *MailboxStats) *actor.Props {
	return props.Clone(
		actor.WithMailbox(actor.Unbounded(stats)),
		actor.WithReceiverMiddleware(stats.ReceiverMiddleware()),
		actor.WithSenderMiddleware(stats.SenderMiddleware()),
	)
}

// MailboxStarted implements actor.MailboxMiddleware. The spawner calls it
// once per mailbox, on the goroutine that spawned the actor, just after
// posting *actor.Started; the actor may already be processing by then.
func (s *MailboxStats) MailboxStarted() {
	s.update(func() { s.starts++ })
}

// MessagePosted implements actor.MailboxMiddleware. The mailbox calls it on
// the sender's goroutine (the test goroutine, another actor's dispatcher
// goroutine, a remote endpoint's reader...), for user and system messages,
// before the message is queued. Calls from several senders run concurrently.
func (s *MailboxStats) MessagePosted(msg any) {
	s.record(posted, msg)
}

// MessageReceived implements actor.MailboxMiddleware. The mailbox calls it on
// its dispatcher goroutine after the message has been handled: for a user
// message, after the actor's Receive returned; for *actor.SuspendMailbox and
// *actor.ResumeMailbox, after the mailbox changed state. Calls for one
// mailbox are sequential and in processing order.
func (s *MailboxStats) MessageReceived(msg any) {
	s.record(received, msg)
}

// MailboxEmpty implements actor.MailboxMiddleware. The mailbox calls it on
// its dispatcher goroutine when a processing run ends with no user messages
// queued and the mailbox not suspended. A message may be posted again as
// soon as it returns.
func (s *MailboxStats) MailboxEmpty() {
	s.update(func() { s.empties++ })
}

// ReceiverMiddleware returns middleware that records each message as
// Delivered. It runs on the actor's dispatcher goroutine just before the
// next receiver (ultimately the actor's Receive), so a message is recorded
// even if Receive then blocks or panics.
func (s *MailboxStats) ReceiverMiddleware() actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			s.record(delivered, env.Message)
			next(ctx, env)
		}
	}
}

// SenderMiddleware returns middleware that records each message the actor
// sends through its context (Send, Request, RequestFuture, Respond,
// Forward) as Sent. It runs inside the actor's Receive, on its dispatcher
// goroutine, before the message is handed on. System messages (Watch,
// Stop...) do not pass through sender middleware, and neither does a
// Respond when the request had no sender (protoactor hands that straight to
// dead letters).
func (s *MailboxStats) SenderMiddleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(ctx actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			s.record(sent, env.Message)
			next(ctx, target, env)
		}
	}
}

// Posted returns the messages posted so far, in posting order.
func (s *MailboxStats) Posted() []any { return s.snapshot(posted, 0) }

// Delivered returns the messages handed to Receive so far, in order.
func (s *MailboxStats) Delivered() []any { return s.snapshot(delivered, 0) }

// Received returns the messages whose handling has finished, in order.
func (s *MailboxStats) Received() []any { return s.snapshot(received, 0) }

// Sent returns the messages the actor has sent, in order.
func (s *MailboxStats) Sent() []any { return s.snapshot(sent, 0) }

// MailboxStartCount is how many mailboxes have started.
func (s *MailboxStats) MailboxStartCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.starts
}

// MailboxEmptyCount is how many times a mailbox has run empty.
func (s *MailboxStats) MailboxEmptyCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()

	return s.empties
}

// Counts holds how many messages of one type reached each moment.
type Counts struct {
	Posted, Delivered, Received, Sent int
}

// Count counts the recorded messages that are a T. T may be an interface,
// which counts every message implementing it.
func Count[T any](s *MailboxStats) Counts {
	is := func(msg any) bool { _, ok := msg.(T); return ok }

	s.mu.Lock()
	defer s.mu.Unlock()

	return Counts{
		Posted:    countIf(s.messages[posted], is),
		Delivered: countIf(s.messages[delivered], is),
		Received:  countIf(s.messages[received], is),
		Sent:      countIf(s.messages[sent], is),
	}
}

// CountsByType counts the recorded messages by dynamic type, keyed by its
// %T spelling ("*actor.Started"). Meant for failure messages and logs.
func (s *MailboxStats) CountsByType() map[string]Counts {
	s.mu.Lock()
	defer s.mu.Unlock()

	byType := make(map[string]Counts)
	for ph, msgs := range s.messages {
		for _, msg := range msgs {
			key := fmt.Sprintf("%T", msg)
			c := byType[key]
			switch phase(ph) {
			case posted:
				c.Posted++
			case delivered:
				c.Delivered++
			case received:
				c.Received++
			case sent:
				c.Sent++
			}
			byType[key] = c
		}
	}

	return byType
}

// WaitForPosted reports whether a posted message satisfies match, waiting
// up to timeout for one. Messages posted before the call count too, so there
// is no race between causing a post and waiting for it.
func (s *MailboxStats) WaitForPosted(match func(msg any) bool, timeout time.Duration) bool {
	return s.waitFor(posted, match, timeout)
}

// WaitForDelivered is [MailboxStats.WaitForPosted] for Delivered messages.
func (s *MailboxStats) WaitForDelivered(match func(msg any) bool, timeout time.Duration) bool {
	return s.waitFor(delivered, match, timeout)
}

// WaitForReceived is [MailboxStats.WaitForPosted] for Received messages.
// A true result means the actor has finished handling the message, which
// makes it the usual way to synchronise a test with an actor.
func (s *MailboxStats) WaitForReceived(match func(msg any) bool, timeout time.Duration) bool {
	return s.waitFor(received, match, timeout)
}

// WaitForSent is [MailboxStats.WaitForPosted] for Sent messages.
func (s *MailboxStats) WaitForSent(match func(msg any) bool, timeout time.Duration) bool {
	return s.waitFor(sent, match, timeout)
}

// WaitUntil reports whether cond holds, evaluating it now and after every
// change to s until it holds or timeout passes. cond runs on the calling
// goroutine without s locked, so it may call s's methods:
//
//	stats.WaitUntil(func() bool { return testkit.Count[*Ping](stats).Received >= 3 }, time.Second)
func (s *MailboxStats) WaitUntil(cond func() bool, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()

	for {
		// Take the channel before evaluating cond: a change after that
		// closes this channel, so none goes unnoticed.
		changed := s.changedChan()
		if cond() {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

// waitFor waits for a message in phase ph satisfying match, looking at each
// recorded message once.
func (s *MailboxStats) waitFor(ph phase, match func(any) bool, timeout time.Duration) bool {
	seen := 0
	return s.WaitUntil(func() bool {
		fresh := s.snapshot(ph, seen)
		seen += len(fresh)
		for _, msg := range fresh {
			if match(msg) {
				return true
			}
		}
		return false
	}, timeout)
}

func (s *MailboxStats) record(ph phase, msg any) {
	msg = actor.UnwrapEnvelopeMessage(msg)
	s.update(func() { s.messages[ph] = append(s.messages[ph], msg) })
}

// update applies change under the lock and wakes every WaitUntil.
func (s *MailboxStats) update(change func()) {
	s.mu.Lock()
	defer s.mu.Unlock()

	change()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil // made again by the next waiter
	}
}

func (s *MailboxStats) changedChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.changed == nil {
		s.changed = make(chan struct{})
	}

	return s.changed
}

// snapshot copies the messages recorded in phase ph from index from on.
func (s *MailboxStats) snapshot(ph phase, from int) []any {
	s.mu.Lock()
	defer s.mu.Unlock()

	return append([]any(nil), s.messages[ph][from:]...)
}

func countIf(msgs []any, match func(any) bool) int {
	n := 0
	for _, msg := range msgs {
		if match(msg) {
			n++
		}
	}

	return n
}
