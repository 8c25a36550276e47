// Read-only views of the peers, for observers (actors.Node.DebugHandler):
// PeerInfo snapshots, the per-peer traffic counters they report, and the
// PeerMigrated event.
//
// Ownership: nothing here owns protocol state. PeerInfo reads the endpoint
// map and each endpoint's atomics (the reads a sender makes), takes the
// endpoint's mutex only to count its queue, and reads the live
// connection's counters, as the metrics callback does (metrics.go). The
// traffic table is written once, in Start; its counters are atomics that
// the message path adds to.

package dist

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cask-p2p/cask/transport"
)

// peerCounters counts one peer's traffic for the life of the Manager: it
// survives reconnects and the retirement of the peer's endpoint, so the
// counts never go back.
type peerCounters struct {
	messagesSent     atomic.Uint64
	bytesSent        atomic.Uint64
	messagesReceived atomic.Uint64
	bytesReceived    atomic.Uint64
	sessions         atomic.Uint64 // sessions established with the peer
}

// trafficTable holds the per-peer counters; nil when neither
// Config.CountTraffic nor Config.MeterProvider asks for them, and then
// the message path pays one nil check.
type trafficTable struct {
	peers sync.Map // node name → *peerCounters
}

// counters returns the counters of node, made on first use; nil when the
// Manager keeps none.
func (t *trafficTable) counters(node string) *peerCounters {
	if t == nil {
		return nil
	}
	if c, ok := t.peers.Load(node); ok {
		return c.(*peerCounters)
	}
	c, _ := t.peers.LoadOrStore(node, new(peerCounters))
	return c.(*peerCounters)
}

// PeerState is where a peer's session stands, as PeerInfo reports it.
type PeerState string

const (
	// PeerConnected: a session is up and takes messages.
	PeerConnected PeerState = "connected"
	// PeerClosing: the session takes no more messages and is closing
	// (a goodbye, an idle reap, a lost connection being noticed).
	PeerClosing PeerState = "closing"
	// PeerConnecting: no session; a connect was asked for and is not
	// settled (messages wait in the queue).
	PeerConnecting PeerState = "connecting"
	// PeerUnreachable: the last connect attempt failed and the reconnect
	// backoff runs; sends are dead letters at once.
	PeerUnreachable PeerState = "unreachable"
	// PeerIdle: the node holds an endpoint for the peer (a pin, a watch,
	// a cached PID) but no session and no connect attempt.
	PeerIdle PeerState = "idle"
)

// PeerInfo is a snapshot of one peer the node holds an endpoint for.
// The session fields (Incarnation, Role, Since, Path) are set while
// State is PeerConnected or PeerClosing.
type PeerInfo struct {
	Node  string
	State PeerState
	// Incarnation is the peer's, as its dist handshake announced it.
	Incarnation Incarnation
	// Role says which side dialed the connection.
	Role transport.Role
	// Since is when the session was established.
	Since time.Time
	// Path is the connection's current path and its statistics.
	Path transport.PathStats
	// Pending counts messages waiting for a session.
	Pending int
	// Pinned: Pin holds the session open against idle reaping.
	Pinned bool
	// Counted is true when the node keeps traffic counters
	// (Config.CountTraffic or a MeterProvider); the counts below are then
	// the peer's since the node started, across reconnects.
	Counted                                                  bool
	MessagesSent, MessagesReceived, BytesSent, BytesReceived uint64
	// Sessions counts the sessions established with the peer (counted
	// like the messages).
	Sessions uint64
}

// PeerInfo returns a snapshot of every peer the node holds an endpoint
// for, sorted by name. It asks no actor: any goroutine may call it, and
// it never waits for the network.
func (m *Manager) PeerInfo() []PeerInfo {
	var out []PeerInfo
	m.endpoints.Range(func(k, v any) bool {
		ep := v.(*endpoint)
		p := PeerInfo{Node: k.(string), Pinned: ep.pins.Load() > 0}
		ep.mu.Lock()
		p.Pending = len(ep.pending)
		requested := ep.requested
		ep.mu.Unlock()
		switch s := ep.sess.Load(); {
		case s != nil:
			p.State = PeerConnected
			if s.isClosing() {
				p.State = PeerClosing
			}
			p.Incarnation, p.Role, p.Since, p.Path = s.inc, s.role, s.start, s.conn.Stats()
		case ep.unreachable.Load() != nil:
			p.State = PeerUnreachable
		case requested:
			p.State = PeerConnecting
		default:
			p.State = PeerIdle
		}
		if c := ep.counters; c != nil {
			p.Counted = true
			p.MessagesSent, p.MessagesReceived = c.messagesSent.Load(), c.messagesReceived.Load()
			p.BytesSent, p.BytesReceived = c.bytesSent.Load(), c.bytesReceived.Load()
			p.Sessions = c.sessions.Load()
		}
		out = append(out, p)
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}

// PeerMigrated is published on the node's actor system EventStream
// (system.EventStream.Subscribe) each time a migration this node ran
// (MigratePeer, Node.MigrateAll, a watchdog) finishes, successful or
// not; a request refused before a migration starts (ErrMigrationNotAllowed,
// ErrPeerDisableMigration, no session) publishes none. It is published
// on the migration's goroutine, after the
// migration's metrics are recorded and before the requester gets its
// MigrateResult. A subscriber must not block.
type PeerMigrated struct {
	Node string
	// From and To are the connection's local addresses before and after;
	// equal when the migration failed.
	From, To string
	Start    time.Time
	Took     time.Duration
	// Err is nil on success, else the error MigrateResult carries.
	Err error
}

// peerMigrated publishes PeerMigrated.
func (m *Manager) peerMigrated(node, from, to string, start time.Time, took time.Duration, err error) {
	m.system.EventStream.Publish(&PeerMigrated{Node: node, From: from, To: to, Start: start, Took: took,
		Err: peerErr("migrate", node, err)})
}
