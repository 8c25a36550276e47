package actors

import (
	"context"
	"sync"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/pathstats"
)

var _ pathstats.Source = (*Node)(nil)

// MigratePeer moves the QUIC connection to peer onto a new local path and
// waits until the path is validated (PATH_CHALLENGE/PATH_RESPONSE) and in
// use, or the attempt failed. It is a thin wrapper over the dist.MigratePeer
// request to the dist manager (Node.Dist), which actors should send
// themselves rather than block on this call.
//
// Options: dist.MigrationTimeout (default 5 s), dist.MigrationLocalAddr
// (e.g. a new interface's IP; default: the current IP, new port) or
// dist.MigrationAdapter (e.g. an adapter.Relayed). Errors match
// dist.ErrNotConnected, dist.ErrNoConn, dist.ErrPeerDisableMigration
// (terminal for this connection), dist.ErrTimeout (the old path keeps
// working), dist.ErrMigrationNotAllowed (this node's DisableMigration, or
// the peer dialed this connection and cannot take a handover). There is
// no limit on the number of migrations of one connection. Where QUIC
// path migration cannot serve (this node accepted the connection, the
// new path cannot be probed) the session is handed over to a new
// connection from the requested address.
// See docs/migration.md.
func (n *Node) MigratePeer(ctx context.Context, peer string, opts ...dist.MigrateOption) error {
	return n.dist.MigratePeer(ctx, peer, opts...)
}

// MigrateAll migrates the connection to every peer with a live session,
// all at once, and returns each peer's result (nil on success). Sessions
// whose connection this node accepted are handed over to new connections.
// A slow peer delays only its own result.
func (n *Node) MigrateAll(ctx context.Context, opts ...dist.MigrateOption) map[string]error {
	peers := n.dist.Nodes()
	results := make(map[string]error, len(peers))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, peer := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.dist.MigratePeer(ctx, peer, opts...)
			mu.Lock()
			results[peer] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// PathStats returns a summary of the QUIC path to peer; the error matches
// dist.ErrNotConnected when there is no session to peer, dist.ErrNoConn
// when its connection just went away.
func (n *Node) PathStats(peer string) (pathstats.Summary, error) {
	s, err := n.dist.PathStats(context.Background(), peer) // bounded by dist's own timeout
	if err != nil {
		return pathstats.Summary{}, err
	}
	return pathstats.FromTransport(s), nil
}

// SetConnectOptions sets how this node connects to peer from now on (the
// next connect and any reconnect): opts.Adapter opens the socket the
// connection is dialed from, e.g. an adapter.Relayed to go through
// a relay. A live session is not touched; migrate it with MigratePeer.
// Zero options remove the setting.
func (n *Node) SetConnectOptions(peer string, opts dist.ConnectOptions) error {
	return n.dist.SetConnectOptions(peer, opts)
}
