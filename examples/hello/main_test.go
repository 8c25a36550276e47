package main

import "testing"

// The README's demo must keep working: run it end to end.
func TestHelloDemo(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
