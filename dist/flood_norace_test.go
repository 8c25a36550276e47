//go:build !race

// The flood tests time honest connects against a 2 s bar while an attacker
// in the same process floods the node. Under the race detector every
// handshake costs several times more CPU, so on a loaded 2-core machine
// the bar measures the machine, not the admission policy: they run in the
// normal test pass only. The admission code itself runs under -race in
// transport's admission tests and TestMuteAuthenticatedPeersCountAsPending.

package dist_test

import (
	"fmt"
	"testing"

	"github.com/cask-p2p/cask/transport"
)

// checkFlood asserts the bar: at least 95% of honest first
// connections succeed within floodHonestWithin, and every request on the
// established session succeeds.
func checkFlood(t *testing.T, res floodResult) {
	t.Helper()
	t.Log(res)
	if res.honestOK*100 < res.honest*95 {
		t.Errorf("only %d of %d honest nodes connected within %v during the flood", res.honestOK, res.honest, floodHonestWithin)
	}
	if len(res.requestErrs) > 0 || len(res.requests) == 0 {
		t.Errorf("established session: %d of %d requests failed during the flood: %v", len(res.requestErrs), len(res.requests), res.requestErrs)
	}
}

// TestHandshakeFloodOneSource: 128 silent connections redialled from one
// address (127.0.1.1).
func TestHandshakeFloodOneSource(t *testing.T) {
	checkFlood(t, runFlood(t, []string{"127.0.1.1"}, 2*transport.DefaultMaxPendingHandshakes))
}

// TestHandshakeFloodManySources: one silent connection redialled from
// each of 64 addresses (127.0.1.1 to 127.0.1.64).
func TestHandshakeFloodManySources(t *testing.T) {
	sources := make([]string, 64)
	for i := range sources {
		sources[i] = fmt.Sprintf("127.0.1.%d", i+1)
	}
	checkFlood(t, runFlood(t, sources, 1))
}
