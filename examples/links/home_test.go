package main

import (
	"os"
	"testing"

	"github.com/cask-p2p/cask/internal/testhome"
)

// TestMain gives the tests a home of their own: nodes started with the
// default admission create their cluster cookie there.
func TestMain(m *testing.M) { os.Exit(testhome.M(m).Run()) }
