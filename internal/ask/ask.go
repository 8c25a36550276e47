// Package ask waits for a protoactor future within a context: the one
// place Cask's blocking wrappers (Node.Connect, Node.Join, ...) turn an
// actor request into a call that honours ctx.
package ask

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Timeout is how long a request may wait: until ctx's deadline, or
// fallback when ctx has none. It is ≤ 0 when the deadline has passed.
func Timeout(ctx context.Context, fallback time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl)
	}
	return fallback
}

// Wait returns the future's result, or ctx's error if ctx ends first. A
// future that times out reports context.DeadlineExceeded. When ctx ends
// first, the goroutine reading the future lives on until the future
// completes or times out; callers that can answer the future early (the
// membership actor) do so.
func Wait(ctx context.Context, fut *actor.Future) (any, error) {
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := fut.Result()
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		if errors.Is(r.err, actor.ErrTimeout) {
			return nil, context.DeadlineExceeded
		}
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
