package main

import "testing"

// The README's demo must keep working: run it end to end. It runs 16
// times because the watch once raced the stop (Why: NotFound instead of
// Stopped in some runs); run fails unless the greeter's Terminated says
// Stopped.
func TestHelloDemo(t *testing.T) {
	for i := 0; i < 16; i++ {
		if err := run(); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}
