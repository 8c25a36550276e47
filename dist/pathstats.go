// Path statistics of a peer's connection (GetPathStats).
//
// The controller answers at once from the connection's counters.

package dist

import (
	"context"
	"time"

	"github.com/cask-p2p/cask/transport"
)

// pathStatsTimeout bounds Manager.PathStats when ctx has no deadline.
const pathStatsTimeout = 5 * time.Second

// GetPathStats asks the dist manager for the statistics of the QUIC path
// that carries the session to Node. The sender gets *PathStatsResult at
// once (the controller reads counters; nothing waits for the network).
// Package pathstats turns the answer into a pathstats.Summary.
type GetPathStats struct {
	Node string
}

// PathStatsResult answers GetPathStats. Err is nil or a *PeerError
// matching ErrNotConnected (no session), ErrNoConn (the connection is
// gone), ErrStopped, ErrBadNodeName or ErrSelf. After a migration Stats
// describe the new path.
type PathStatsResult struct {
	Node  string
	Stats transport.PathStats
	Err   error
}

// PathStats sends GetPathStats for node and waits for the answer.
func (m *Manager) PathStats(ctx context.Context, node string) (transport.PathStats, error) {
	if err := m.checkPeer(node); err != nil {
		return transport.PathStats{}, peerErr("path stats", node, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, pathStatsTimeout)
		defer cancel()
	}
	res, err := m.request(ctx, &GetPathStats{Node: node})
	if err != nil {
		return transport.PathStats{}, peerErr("path stats", node, err)
	}
	r := res.(*PathStatsResult)
	return r.Stats, r.Err
}

// pathStats answers GetPathStats from the controller.
func (c *controller) pathStats() *PathStatsResult {
	if err := c.sessionCheck(); err != nil {
		return &PathStatsResult{Node: c.peer, Err: peerErr("path stats", c.peer, err)}
	}
	return &PathStatsResult{Node: c.peer, Stats: c.sess.conn.Stats()}
}
