package testkit_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cask-p2p/cask/actors/testkit"
)

func TestAwaitConditionHolds(t *testing.T) {
	var done atomic.Bool
	time.AfterFunc(3*quietPeriod, func() { done.Store(true) })

	if err := testkit.AwaitConditionAsync(done.Load, waitTimeout); err != nil {
		t.Fatal(err)
	}
}

func TestAwaitConditionTimesOut(t *testing.T) {
	never := func() bool { return false }

	err := testkit.AwaitConditionAsync(never, quietPeriod)
	if err == nil || !strings.Contains(err.Error(), "not met within 50ms") {
		t.Fatalf("err = %v, want a timeout naming 50ms", err)
	}
	err = testkit.AwaitConditionAsync(never, quietPeriod, "the cache never warmed")
	if err == nil || err.Error() != "the cache never warmed" {
		t.Fatalf("err = %v, want the given message", err)
	}
}

func TestAwaitConditionZeroTimeoutIsOneSecond(t *testing.T) {
	t.Parallel()
	start := time.Now()
	if err := testkit.AwaitConditionAsync(func() bool { return false }, 0); err == nil {
		t.Fatal("a condition never met was met")
	}
	if elapsed := time.Since(start); elapsed < testkit.DefaultTimeout || elapsed > 3*testkit.DefaultTimeout {
		t.Fatalf("gave up after %v, want about DefaultTimeout", elapsed)
	}
}

func TestAwaitConditionStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := testkit.AwaitCondition(ctx, func() bool { return false }, waitTimeout)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
