package testkit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// awaitPollInterval is how often AwaitCondition evaluates its condition.
const awaitPollInterval = 20 * time.Millisecond

// AwaitCondition is upstream protoactor-go's condition wait: it evaluates
// condition now and then every 20 ms until it holds (nil) or
// timeout passes (an error; timeout ≤ 0 means [DefaultTimeout]). The error
// says message[0] if given, else that the condition was not met. If ctx
// ends first, the error wraps ctx's error. condition runs on the calling
// goroutine.
//
// Polling suits state that has no event to wait for; for an actor's
// messages, [MailboxStats.WaitUntil] and the probes wake on the event
// itself.
func AwaitCondition(ctx context.Context, condition func() bool, timeout time.Duration, message ...string) error {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(awaitPollInterval)
	defer tick.Stop()

	for {
		if condition() {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			if len(message) > 0 {
				return errors.New(message[0])
			}
			return fmt.Errorf("testkit: condition not met within %v", timeout)
		case <-ctx.Done():
			return fmt.Errorf("testkit: waiting for a condition: %w", ctx.Err())
		}
	}
}

// AwaitConditionAsync is [AwaitCondition] with no context to end it early.
// (The name is upstream's; the wait blocks all the same.)
func AwaitConditionAsync(condition func() bool, timeout time.Duration, message ...string) error {
	return AwaitCondition(context.Background(), condition, timeout, message...)
}
