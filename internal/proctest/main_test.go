package proctest_test

import (
	"os"
	"testing"

	"github.com/cask-p2p/cask/internal/proctest"
	"github.com/cask-p2p/cask/internal/testhome"
)

func TestMain(m *testing.M) { os.Exit(proctest.M(testhome.M(m)).Run()) }
