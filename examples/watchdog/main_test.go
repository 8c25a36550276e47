package main

import (
	"os"
	"testing"
)

// The README's first command must keep working: run the demo end to end
// (it fails if the watchdog does not migrate, a message is lost, or the
// SRTT does not fall back).
func TestWatchdogDemo(t *testing.T) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	if err := run(devnull); err != nil {
		t.Fatal(err)
	}
}
