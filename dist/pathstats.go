package dist

import (
	"context"
	"net"
	"time"

	"github.com/cask-p2p/cask/transport"
)

// pathStatsTimeout bounds Manager.PathStats when ctx has no deadline.
const pathStatsTimeout = 5 * time.Second

// GetPathStats asks the dist manager for the statistics of the QUIC path
// that carries the channel to Node. The sender gets *PathStatsResult at
// once (the controller reads counters; nothing waits for the network).
// Package pathstats turns the answer into a pathstats.Summary.
type GetPathStats struct {
	Node string
}

// PathStatsResult answers GetPathStats. Err is nil or a *PeerError
// matching ErrNotConnected (no channel), ErrNoConn (the connection is
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
	if err := c.channelCheck(); err != nil {
		return &PathStatsResult{Node: c.peer, Err: peerErr("path stats", c.peer, err)}
	}
	return &PathStatsResult{Node: c.peer, Stats: c.sess.conn.Stats()}
}

// ConnectOptions are per-peer settings for connects this node makes to
// one peer (Manager.SetConnectOptions).
type ConnectOptions struct {
	// Adapter opens the socket the connection is dialed from instead of
	// the node's shared socket, e.g. adapter.Relayed to reach the
	// peer through a relay. Nil means the shared socket.
	Adapter transport.SocketAdapter
}

// SetConnectOptions sets the options used by every connect to node from
// now on: the next one, and any reconnect after it. A live channel is not
// touched (migrate it with MigratePeer instead). Zero options remove the
// setting.
func (m *Manager) SetConnectOptions(node string, opts ConnectOptions) error {
	if err := ValidateNodeName(node); err != nil {
		return peerErr("connect options", node, err)
	}
	if opts.Adapter == nil {
		m.connectOptions.Delete(node)
		return nil
	}
	m.connectOptions.Store(node, opts)
	return nil
}

// dialAddr dials one of node's addresses, from the socket its
// ConnectOptions name, if any.
func (m *Manager) dialAddr(ctx context.Context, node string, addr net.Addr) (*transport.Conn, error) {
	if v, ok := m.connectOptions.Load(node); ok {
		if o := v.(ConnectOptions); o.Adapter != nil {
			return m.tr.DialVia(ctx, addr, o.Adapter)
		}
	}
	return m.tr.Dial(ctx, addr)
}
