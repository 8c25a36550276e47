package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/internal/ask"
)

// DefaultRequestTimeout bounds Request when its context has no deadline.
const DefaultRequestTimeout = 5 * time.Second

// ErrUnexpectedReply: Request got a reply of another type than it asked
// for.
var ErrUnexpectedReply = errors.New("actors: unexpected reply type")

// deadLetterReasonWait bounds how long Request waits, after its future
// failed as a dead letter, for the dead letter's own event (which
// carries the reason). Protoactor answers the future from an event
// stream subscriber that runs just before Request's own, on the same
// goroutine, so the event follows within microseconds; only a dead
// letter declared by another node (a remote PID that names no actor)
// has no event here and costs this wait.
const deadLetterReasonWait = 100 * time.Millisecond

// Request sends msg to pid as a request and waits for the reply, which
// must be a T, until ctx ends (DefaultRequestTimeout when ctx has no
// deadline). It works for local and remote PIDs alike. The error says
// why there is no reply, matchable with errors.Is:
//
//   - the dist layer's reason for a message it could not deliver, e.g.
//     dist.ErrUnknownNode, dist.ErrUnreachable together with the last
//     connect error (and so dist.ErrConnectFailed or an identity error
//     such as identity.ErrClusterSecret), dist.ErrNotProtobuf,
//     dist.ErrUnknownType, dist.ErrMessageTooLarge, dist.ErrQueueFull;
//     these also match actor.ErrDeadLetter;
//   - actor.ErrDeadLetter alone when no reason is known (a PID that names
//     no actor);
//   - context.DeadlineExceeded when no reply came in time, or ctx's own
//     error when it was cancelled;
//   - ErrUnexpectedReply when the reply is not a T.
//
// Go has no generic methods, so it is a function of the node.
func Request[T any](ctx context.Context, node *Node, pid *actor.PID, msg any) (T, error) {
	var zero T
	timeout := ask.Timeout(ctx, DefaultRequestTimeout)
	if timeout <= 0 {
		return zero, fmt.Errorf("actors: request to %s: %w", pidString(pid), context.DeadlineExceeded)
	}
	sys := node.system
	fut := actor.NewFuture(sys, timeout)
	reasons := make(chan error, 1)
	sub := sys.EventStream.SubscribeWithPredicate(func(ev any) {
		dl := ev.(*actor.DeadLetterEvent)
		var reason error
		if um, ok := dl.Message.(*dist.UndeliveredMessage); ok {
			reason = um.Reason
		}
		select {
		case reasons <- reason:
		default:
		}
	}, func(ev any) bool {
		dl, ok := ev.(*actor.DeadLetterEvent)
		return ok && dl.Sender != nil && dl.Sender.Equal(fut.PID())
	})
	defer sys.EventStream.Unsubscribe(sub)
	sys.Root.RequestWithCustomSender(pid, msg, fut.PID())
	res, err := ask.Wait(ctx, fut)
	switch {
	case errors.Is(err, actor.ErrDeadLetter):
		var reason error
		select {
		case reason = <-reasons:
		case <-time.After(deadLetterReasonWait):
		}
		return zero, &requestError{pid: pid, reason: reason}
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return zero, fmt.Errorf("actors: request to %s: no reply within %v: %w", pidString(pid), timeout.Round(time.Millisecond), err)
	case err != nil:
		return zero, fmt.Errorf("actors: request to %s: %w", pidString(pid), err)
	}
	reply, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("%w: request to %s: got %T, want %T", ErrUnexpectedReply, pidString(pid), res, zero)
	}
	return reply, nil
}

// requestError is a request that ended as a dead letter: it matches
// actor.ErrDeadLetter and, when known, the reason the dist layer gave.
type requestError struct {
	pid    *actor.PID
	reason error
}

func (e *requestError) Error() string {
	if e.reason == nil {
		return "actors: request to " + pidString(e.pid) + ": " + actor.ErrDeadLetter.Error()
	}
	return "actors: request to " + pidString(e.pid) + ": " + e.reason.Error()
}

func (e *requestError) Unwrap() []error {
	if e.reason == nil {
		return []error{actor.ErrDeadLetter}
	}
	return []error{actor.ErrDeadLetter, e.reason}
}

// pidString formats a PID as address/id.
func pidString(pid *actor.PID) string { return pid.GetAddress() + "/" + pid.GetId() }
