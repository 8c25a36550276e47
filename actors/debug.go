package actors

import (
	"embed"
	"encoding/json"
	"errors"
	"net/http"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport/identity"
)

// The debug page (Node.DebugHandler): a collector actor samples the dist
// layer's peer snapshots (dist.Manager.PeerInfo) and the membership
// views once per debugSampleInterval, keeps a bounded SRTT history and
// the migrations of each peer, and answers snapshot requests; the HTTP
// handler serves the embedded page and the snapshot as JSON.
//
// Ownership: the collector's fields are touched only from its Receive.
// Dead-letter counts are the one hand-off: the EventStream handler runs on
// whichever goroutine publishes the dead letter, so they sit behind their
// own mutex (debugDeadLetters). Node.debugMu guards the collector's PID
// and the stopped flag against a DebugHandler racing Node.Stop.

const (
	// debugSampleInterval is how often the collector samples.
	debugSampleInterval = time.Second
	// debugHistory is how many SRTT samples are kept per peer: five
	// minutes at one a second.
	debugHistory = 300
	// debugMigrationsKept is how many migrations are kept per peer.
	debugMigrationsKept = 20
	// debugMaxPeers bounds the peers remembered; peers with no endpoint
	// and in no view are forgotten first, the longest unseen first.
	debugMaxPeers = 256
	// debugSnapshotTimeout bounds one snapshot request.
	debugSnapshotTimeout = 2 * time.Second
)

//go:embed debugpage
var debugAssets embed.FS

// DebugHandler returns an http.Handler that serves this node's debug
// page: GET / is a self-contained HTML page (nothing is loaded from
// elsewhere) showing the node, each peer (state and since when, SRTT
// over the last five minutes, migrations, messages and dead letters) and
// the membership views as a graph, refreshed every second from GET
// /peers, which returns the same data as JSON (docs/observability.md
// documents its schema). Mount it under a prefix with http.StripPrefix;
// the page's links are relative.
//
// The first call starts a collector actor that samples the peers once a
// second; history starts then. Node.Stop stops it, and the handler then
// answers 503. Message counts need counters: Config.Dist.CountTraffic or
// a MeterProvider. Calls after the first return handlers sharing the
// same collector; any number of requests may run at once.
func (n *Node) DebugHandler() http.Handler {
	n.debugMu.Lock()
	defer n.debugMu.Unlock()
	if n.debugPID == nil && !n.debugStopped {
		dead := &debugDeadLetters{peers: make(map[string]*debugDeadLetterCount)}
		n.debugPID = n.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor {
			return &debugCollector{n: n, dead: dead, peers: make(map[string]*debugPeer)}
		}))
		pid := n.debugPID
		n.debugSub = n.system.EventStream.Subscribe(func(ev any) {
			switch ev := ev.(type) {
			case *actor.DeadLetterEvent:
				if u, ok := ev.Message.(*dist.UndeliveredMessage); ok {
					dead.add(u.Node, u.Reason, time.Now())
				}
			case *dist.PeerMigrated:
				n.system.Root.Send(pid, ev)
			}
		})
	}
	return debugHandler{n: n}
}

// stopDebug stops the debug collector, if DebugHandler started one, and
// waits for it; handlers answer 503 from then on.
func (n *Node) stopDebug() {
	n.debugMu.Lock()
	n.debugStopped = true
	pid, sub := n.debugPID, n.debugSub
	n.debugPID, n.debugSub = nil, nil
	n.debugMu.Unlock()
	if sub != nil {
		n.system.EventStream.Unsubscribe(sub)
	}
	if pid != nil {
		_ = n.system.Root.StopFuture(pid).Wait()
	}
}

// errDebugStopped answers a snapshot request after Node.Stop.
var errDebugStopped = errors.New("actors: node stopped")

// debugSnapshot asks the collector for the page's data.
func (n *Node) debugSnapshot() (*debugState, error) {
	n.debugMu.Lock()
	pid := n.debugPID
	n.debugMu.Unlock()
	if pid == nil {
		return nil, errDebugStopped
	}
	res, err := n.system.Root.RequestFuture(pid, debugSnapshotRequest{}, debugSnapshotTimeout).Result()
	if err != nil {
		return nil, err
	}
	return res.(*debugState), nil
}

type debugHandler struct{ n *Node }

var debugContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

func (h debugHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := r.URL.Path
	switch name {
	case "/peers":
		st, err := h.n.debugSnapshot()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		_ = enc.Encode(st)
		return
	case "", "/":
		name = "/index.html"
	}
	body, err := debugAssets.ReadFile("debugpage" + path.Clean(name))
	ctype, known := debugContentTypes[path.Ext(name)]
	if err != nil || !known {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(body)
}

// debugState is the JSON of GET /peers (docs/observability.md, "The
// debug page's JSON").
type debugState struct {
	Node             debugNode        `json:"node"`
	Now              time.Time        `json:"now"`
	SampleIntervalMS int64            `json:"sample_interval_ms"`
	HistorySeconds   int64            `json:"history_seconds"`
	TrafficCounted   bool             `json:"traffic_counted"`
	Membership       debugMembership  `json:"membership"`
	Peers            []debugPeerState `json:"peers"`
}

type debugNode struct {
	Name        string           `json:"name"`
	Incarnation dist.Incarnation `json:"incarnation"`
	PublicKey   string           `json:"public_key"`
	Address     string           `json:"address"`
	Since       time.Time        `json:"since"`
}

type debugMembership struct {
	Active  []string `json:"active"`
	Passive []string `json:"passive"`
}

type debugPeerState struct {
	Name             string               `json:"name"`
	State            string               `json:"state"`
	Since            time.Time            `json:"since"`
	DownReason       string               `json:"down_reason,omitempty"`
	Incarnation      dist.Incarnation     `json:"incarnation,omitempty"`
	Role             string               `json:"role,omitempty"`
	LocalAddress     string               `json:"local_address,omitempty"`
	RemoteAddress    string               `json:"remote_address,omitempty"`
	SRTTMS           float64              `json:"srtt_ms"`
	CongestionWindow uint64               `json:"congestion_window"`
	ActiveView       bool                 `json:"active_view"`
	PassiveView      bool                 `json:"passive_view"`
	Pending          int                  `json:"pending"`
	Messages         *debugTraffic        `json:"messages"`
	DeadLetters      debugDeadLetterCount `json:"dead_letters"`
	Migrations       []debugMigration     `json:"migrations"`
	SRTT             []debugSample        `json:"srtt"`
}

type debugTraffic struct {
	Sent          uint64 `json:"sent"`
	Received      uint64 `json:"received"`
	BytesSent     uint64 `json:"bytes_sent"`
	BytesReceived uint64 `json:"bytes_received"`
	Sessions      uint64 `json:"sessions"`
}

type debugDeadLetterCount struct {
	Count     uint64     `json:"count"`
	LastAt    *time.Time `json:"last_at,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

type debugMigration struct {
	At     time.Time `json:"at"`
	TookMS float64   `json:"took_ms"`
	From   string    `json:"from"`
	To     string    `json:"to"`
	Error  string    `json:"error,omitempty"`
}

type debugSample struct {
	T      int64   `json:"t"` // Unix milliseconds
	SRTTMS float64 `json:"srtt_ms"`
}

// debugDeadLetters counts dead letters per peer; the EventStream handler
// adds, the collector reads.
type debugDeadLetters struct {
	mu    sync.Mutex
	peers map[string]*debugDeadLetterCount
}

func (d *debugDeadLetters) add(node string, reason error, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.peers[node]
	if c == nil {
		if len(d.peers) >= debugMaxPeers {
			return // a flood of made-up names must not grow this
		}
		c = &debugDeadLetterCount{}
		d.peers[node] = c
	}
	c.Count++
	c.LastAt = &at
	if reason != nil {
		c.LastError = reason.Error()
	}
}

func (d *debugDeadLetters) get(node string) debugDeadLetterCount {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.peers[node]; c != nil {
		return *c
	}
	return debugDeadLetterCount{}
}

func (d *debugDeadLetters) forget(node string) {
	d.mu.Lock()
	delete(d.peers, node)
	d.mu.Unlock()
}

// Messages of the collector.
type (
	debugTick            struct{}
	debugSnapshotRequest struct{}
)

// debugCollector is the actor behind the debug page.
type debugCollector struct {
	n       *Node
	dead    *debugDeadLetters
	peers   map[string]*debugPeer
	views   debugMembership
	since   time.Time
	timer   *time.Timer
	stopped bool
}

// debugPeer is what the collector remembers of one peer.
type debugPeer struct {
	info       dist.PeerInfo
	state      string
	since      time.Time
	downReason string
	seen       time.Time // last sample that found an endpoint or a view entry
	srtt       debugRing
	migrations []debugMigration
}

// debugRing keeps the last debugHistory samples.
type debugRing struct {
	buf  []debugSample
	next int
}

func (r *debugRing) add(s debugSample) {
	if len(r.buf) < debugHistory {
		r.buf = append(r.buf, s)
		return
	}
	r.buf[r.next] = s
	r.next = (r.next + 1) % debugHistory
}

// samples returns the samples oldest first, in a new slice.
func (r *debugRing) samples() []debugSample {
	out := make([]debugSample, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}

func (c *debugCollector) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		c.since = time.Now()
		c.n.dist.MonitorNode("", ctx.Self())
		c.refresh(time.Now(), true)
		c.arm(ctx.Self())
	case debugTick:
		if c.stopped {
			return
		}
		c.refresh(time.Now(), true)
		c.arm(ctx.Self())
	case *dist.NodeUp:
		p := c.peer(msg.Node)
		p.downReason = ""
	case *dist.NodeDown:
		p := c.peer(msg.Node)
		p.state, p.since, p.downReason = "down", time.Now(), string(msg.Reason)
	case *dist.PeerMigrated:
		p := c.peer(msg.Node)
		m := debugMigration{At: msg.Start.Add(msg.Took), TookMS: ms(msg.Took), From: msg.From, To: msg.To}
		if msg.Err != nil {
			m.Error = msg.Err.Error()
		}
		p.migrations = append(p.migrations, m)
		if len(p.migrations) > debugMigrationsKept {
			p.migrations = slices.Delete(p.migrations, 0, len(p.migrations)-debugMigrationsKept)
		}
	case debugSnapshotRequest:
		c.refresh(time.Now(), false)
		ctx.Respond(c.snapshot())
	case *actor.Stopping:
		c.stopped = true
		if c.timer != nil {
			c.timer.Stop()
		}
		c.n.dist.DemonitorNode("", ctx.Self())
	}
}

func (c *debugCollector) arm(self *actor.PID) {
	root := c.n.system.Root
	c.timer = time.AfterFunc(debugSampleInterval, func() { root.Send(self, debugTick{}) })
}

func (c *debugCollector) peer(node string) *debugPeer {
	p := c.peers[node]
	if p == nil {
		p = &debugPeer{since: time.Now(), seen: time.Now()}
		c.peers[node] = p
	}
	return p
}

// refresh reads the peers and the views; with sample, it also adds an
// SRTT sample for every connected peer (once per debugSampleInterval, so
// the history's spacing does not depend on how often the page is read).
func (c *debugCollector) refresh(now time.Time, sample bool) {
	c.views = debugMembership{Active: c.n.ActiveView(), Passive: c.n.PassiveView()}
	present := make(map[string]bool)
	for _, info := range c.n.dist.PeerInfo() {
		present[info.Node] = true
		p := c.peer(info.Node)
		p.info, p.seen = info, now
		state := string(info.State)
		if p.state == "down" && (info.State == dist.PeerIdle || info.State == dist.PeerUnreachable) {
			state = "down" // keep when and why it went down
		}
		switch {
		case info.State == dist.PeerConnected || info.State == dist.PeerClosing:
			p.since = info.Since
			if sample {
				p.srtt.add(debugSample{T: now.UnixMilli(), SRTTMS: ms(info.Path.SmoothedRTT)})
			}
		case state != p.state:
			p.since = now
		}
		p.state = state
	}
	for _, name := range append(slices.Clone(c.views.Active), c.views.Passive...) {
		if !present[name] {
			present[name] = true
			p := c.peer(name)
			p.seen = now
			if p.state == "" {
				p.state = "not_connected"
			}
		}
	}
	for name, p := range c.peers {
		if present[name] {
			continue
		}
		p.info = dist.PeerInfo{Node: name}
		if p.state != "down" && p.state != "not_connected" {
			p.state, p.since = "down", now
		}
		if now.Sub(p.seen) > debugHistory*debugSampleInterval {
			delete(c.peers, name)
			c.dead.forget(name)
		}
	}
	for len(c.peers) > debugMaxPeers {
		var oldest string
		for name, p := range c.peers {
			if !present[name] && (oldest == "" || p.seen.Before(c.peers[oldest].seen)) {
				oldest = name
			}
		}
		if oldest == "" {
			break
		}
		delete(c.peers, oldest)
		c.dead.forget(oldest)
	}
}

func (c *debugCollector) snapshot() *debugState {
	n := c.n
	st := &debugState{
		Node: debugNode{
			Name: n.Name(), Incarnation: n.Incarnation(), PublicKey: identity.KeyString(n.PublicKey()),
			Address: n.Addr().String(), Since: c.since,
		},
		Now:              time.Now(),
		SampleIntervalMS: debugSampleInterval.Milliseconds(),
		HistorySeconds:   int64((debugHistory * debugSampleInterval).Seconds()),
		TrafficCounted:   n.cfg.MeterProvider != nil || n.cfg.Dist.CountTraffic,
		Membership:       debugMembership{Active: slices.Clone(c.views.Active), Passive: slices.Clone(c.views.Passive)},
		Peers:            []debugPeerState{},
	}
	names := make([]string, 0, len(c.peers))
	for name := range c.peers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := c.peers[name]
		ps := debugPeerState{
			Name: name, State: p.state, Since: p.since, DownReason: p.downReason,
			ActiveView:  slices.Contains(c.views.Active, name),
			PassiveView: slices.Contains(c.views.Passive, name),
			Pending:     p.info.Pending,
			DeadLetters: c.dead.get(name),
			Migrations:  append([]debugMigration{}, p.migrations...),
			SRTT:        p.srtt.samples(),
		}
		if info := p.info; info.State == dist.PeerConnected || info.State == dist.PeerClosing {
			ps.Incarnation, ps.Role = info.Incarnation, info.Role.String()
			ps.LocalAddress, ps.RemoteAddress = addrText(info.Path.LocalAddr), addrText(info.Path.RemoteAddr)
			ps.SRTTMS, ps.CongestionWindow = ms(info.Path.SmoothedRTT), info.Path.CongestionWindow
		}
		if p.info.Counted {
			ps.Messages = &debugTraffic{Sent: p.info.MessagesSent, Received: p.info.MessagesReceived,
				BytesSent: p.info.BytesSent, BytesReceived: p.info.BytesReceived, Sessions: p.info.Sessions}
		}
		st.Peers = append(st.Peers, ps)
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func addrText(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}
