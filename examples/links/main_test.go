package main

import "testing"

// The demo must keep working: run it end to end. run fails unless every
// crash reaches the supervisor as an exit, every replacement answers,
// and the last worker stops when its supervisor's node stops.
func TestLinksDemo(t *testing.T) {
	for i := 0; i < 3; i++ {
		if err := run(); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}
