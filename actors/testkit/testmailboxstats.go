package testkit

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// TestMailboxStats is upstream protoactor-go's mailbox statistics
// collector, with its names and exported fields, attached to props with the
// options [WithMailboxStats], [WithReceiveStats] and [WithSendStats]:
//
//	isJob := func(m any) bool { _, ok := m.(*Job); return ok }
//	stats := testkit.NewTestMailboxStats(isJob)
//	worker := system.Root.Spawn(actor.PropsFromFunc(work, testkit.WithMailboxStats(stats)))
//	system.Root.Send(worker, &Job{})
//	<-stats.Reset // the worker has handled the job
//
// Each hook appends to the lists it names:
//
//	MailboxStarted                  Stats: "Started"
//	MessagePosted                   Stats, Posted
//	MessageReceived                 Stats, Received; signals Reset if the predicate holds
//	MailboxEmpty                    Stats: "Empty"
//	WithReceiveStats (middleware)   calls MessageReceived before Receive runs
//	WithSendStats (middleware)      calls MessagePosted for every message the actor sends
//
// So, as upstream, with WithReceiveStats as well as WithMailboxStats a
// message is Received twice, the first time before the actor has handled it,
// and with WithSendStats the Posted list mixes what the actor got with what
// it sent. [MailboxStats] keeps those apart, if that is what a test needs.
//
// Unlike upstream, a message that came with a sender (a request, or any
// message from another node that carries one) is recorded as its payload,
// not as the *actor.MessageEnvelope the mailbox holds, so the same test
// passes whether the actor's sender is local or remote.
//
// The hooks run on the actors' goroutines (MessagePosted on the sender's),
// append under a lock and never block; the predicate runs without the lock.
// Reading the exported lists is safe once the recording has stopped and the
// reader has synchronised with it, the way upstream's tests do: after a
// receive from Reset for the last message the actor will handle, or after
// the actor has stopped. While the actor may still be recording, take a
// [TestMailboxStats.Snapshot] instead.
type TestMailboxStats struct {
	// Reset receives a signal (it holds at most one) each time
	// MessageReceived records a message for which the predicate given to
	// NewTestMailboxStats holds.
	Reset chan struct{}
	// Stats lists every event in order: the two mailbox events as the
	// strings "Started" and "Empty", and the messages posted and received.
	Stats []any
	// Posted lists the messages posted to the mailbox (and, with
	// WithSendStats, the messages the actor sent).
	Posted []any
	// Received lists the messages the mailbox finished handling (and, with
	// WithReceiveStats, those about to be handed to Receive).
	Received []any

	waitForReceived func(any) bool
	mu              sync.Mutex
}

var _ actor.MailboxMiddleware = (*TestMailboxStats)(nil)

// TestMailboxRecord is a copy of a [TestMailboxStats]' lists at one moment.
type TestMailboxRecord struct {
	Stats, Posted, Received []any
}

// NewTestMailboxStats returns an empty collector that signals Reset each
// time a received message satisfies waitForReceived. waitForReceived may be
// nil, for no signals.
func NewTestMailboxStats(waitForReceived func(any) bool) *TestMailboxStats {
	return &TestMailboxStats{Reset: make(chan struct{}, 1), waitForReceived: waitForReceived}
}

// WithMailboxStats is a props option that gives the actor an unbounded
// mailbox with stats as its middleware (replacing any mailbox set before).
func WithMailboxStats(stats *TestMailboxStats) actor.PropsOption {
	return actor.WithMailbox(actor.Unbounded(stats))
}

// WithReceiveStats is a props option that adds stats' receiver middleware.
func WithReceiveStats(stats *TestMailboxStats) actor.PropsOption {
	return actor.WithReceiverMiddleware(stats.ReceiverMiddleware())
}

// WithSendStats is a props option that adds stats' sender middleware.
func WithSendStats(stats *TestMailboxStats) actor.PropsOption {
	return actor.WithSenderMiddleware(stats.SenderMiddleware())
}

// MailboxStarted implements actor.MailboxMiddleware.
func (s *TestMailboxStats) MailboxStarted() {
	s.mu.Lock()
	s.Stats = append(s.Stats, "Started")
	s.mu.Unlock()
}

// MessagePosted implements actor.MailboxMiddleware.
func (s *TestMailboxStats) MessagePosted(message any) {
	message = actor.UnwrapEnvelopeMessage(message)
	s.mu.Lock()
	s.Stats = append(s.Stats, message)
	s.Posted = append(s.Posted, message)
	s.mu.Unlock()
}

// MessageReceived implements actor.MailboxMiddleware.
func (s *TestMailboxStats) MessageReceived(message any) {
	message = actor.UnwrapEnvelopeMessage(message)
	s.mu.Lock()
	s.Stats = append(s.Stats, message)
	s.Received = append(s.Received, message)
	s.mu.Unlock()

	if s.waitForReceived != nil && s.waitForReceived(message) {
		select {
		case s.Reset <- struct{}{}:
		default:
		}
	}
}

// MailboxEmpty implements actor.MailboxMiddleware.
func (s *TestMailboxStats) MailboxEmpty() {
	s.mu.Lock()
	s.Stats = append(s.Stats, "Empty")
	s.mu.Unlock()
}

// ReceiverMiddleware returns middleware that records each message as
// received ([TestMailboxStats.MessageReceived]) before passing it on.
func (s *TestMailboxStats) ReceiverMiddleware() actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
			if env != nil {
				s.MessageReceived(env.Message)
			}
			next(ctx, env)
		}
	}
}

// SenderMiddleware returns middleware that records each message the actor
// sends as posted ([TestMailboxStats.MessagePosted]) before passing it on.
func (s *TestMailboxStats) SenderMiddleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(ctx actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			if env != nil {
				s.MessagePosted(env.Message)
			}
			next(ctx, target, env)
		}
	}
}

// Snapshot copies the lists under the collector's lock, so it is safe to
// call while the actor is still recording. (Not in upstream.)
func (s *TestMailboxStats) Snapshot() TestMailboxRecord {
	s.mu.Lock()
	defer s.mu.Unlock()

	return TestMailboxRecord{
		Stats:    append([]any(nil), s.Stats...),
		Posted:   append([]any(nil), s.Posted...),
		Received: append([]any(nil), s.Received...),
	}
}
