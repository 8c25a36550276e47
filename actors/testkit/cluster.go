package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

// ClusterConfig configures NewCluster. Zero fields mean the defaults.
type ClusterConfig struct {
	// Name returns node i's name; default "node<i>@localhost".
	Name func(i int) string
	// Node is the base configuration of every node; Name, Adapter and
	// DiscoveryDir are set by the cluster. DisableDNS is always set.
	Node actors.Config
	// Seed seeds the links' loss decisions; default 1.
	Seed uint64
}

// Cluster is N Cask nodes in one process on loopback, finding each other
// through a shared discovery directory, with a fault handle per link.
type Cluster struct {
	nodes []*actors.Node
	conns []*linkConn
	dir   string
	mu    sync.Mutex
	links map[[2]int]*Link
	addrs map[string]int // listening address → node index
}

// NewCluster starts n nodes for a test and stops them when it ends.
// Faults injected with Link apply to the packets between two nodes' own
// sockets: a connection that migrates to a new socket leaves them behind,
// as a connection leaves a bad network path.
func NewCluster(t testing.TB, n int, cfg ClusterConfig) *Cluster {
	t.Helper()
	c, err := StartCluster(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	return c
}

// StartCluster starts n nodes outside a test (a demo, a benchmark); Stop
// stops them and removes the discovery directory.
func StartCluster(n int, cfg ClusterConfig) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("testkit: a cluster needs at least one node, got %d", n)
	}
	if cfg.Name == nil {
		cfg.Name = func(i int) string { return fmt.Sprintf("node%d@localhost", i) }
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	if cfg.Node.Logger == nil {
		cfg.Node.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir, err := os.MkdirTemp("", "cask-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, links: make(map[[2]int]*Link), addrs: make(map[string]int)}
	for i := 0; i < n; i++ {
		lc := &linkConn{cluster: c, self: i, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)))}
		c.conns = append(c.conns, lc)
		nc := cfg.Node
		nc.Name = cfg.Name(i)
		nc.DiscoveryDir = dir
		nc.DisableDNS = true
		nc.Adapter = lc
		node, err := actors.Start(context.Background(), nc)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("testkit: start %s: %w", nc.Name, err)
		}
		c.nodes = append(c.nodes, node)
		c.mu.Lock()
		c.addrs[node.Addr().String()] = i
		c.mu.Unlock()
	}
	return c, nil
}

// Stop stops every node (each in turn) and removes the discovery
// directory. Safe to call twice.
func (c *Cluster) Stop() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	os.RemoveAll(c.dir)
	return errors.Join(errs...)
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i.
func (c *Cluster) Node(i int) *actors.Node { return c.nodes[i] }

// Nodes returns every node.
func (c *Cluster) Nodes() []*actors.Node { return append([]*actors.Node(nil), c.nodes...) }

// Link returns the fault handle of the link between nodes a and b (the
// same handle for (a, b) and (b, a)). Its faults apply in both
// directions.
func (c *Cluster) Link(a, b int) *Link {
	if a > b {
		a, b = b, a
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.links[[2]int{a, b}]
	if !ok {
		l = &Link{}
		c.links[[2]int{a, b}] = l
	}
	return l
}

// linkFor returns the link between self and the node listening on addr,
// or nil when addr is not a node's listening socket (a migrated path).
func (c *Cluster) linkFor(self int, addr net.Addr) *Link {
	c.mu.Lock()
	peer, ok := c.addrs[addr.String()]
	c.mu.Unlock()
	if !ok || peer == self {
		return nil
	}
	return c.Link(self, peer)
}

// Link is the fault state of one link. Safe for concurrent use; changes
// apply to the next packet.
type Link struct {
	mu        sync.Mutex
	delay     time.Duration
	loss      float64
	blackhole bool
}

// SetDelay adds d to every packet in each direction (the round trip grows
// by 2d).
func (l *Link) SetDelay(d time.Duration) { l.mu.Lock(); l.delay = d; l.mu.Unlock() }

// SetLoss drops each packet with probability rate (0..1), each direction.
func (l *Link) SetLoss(rate float64) { l.mu.Lock(); l.loss = rate; l.mu.Unlock() }

// SetBlackhole drops every packet in both directions while on.
func (l *Link) SetBlackhole(on bool) { l.mu.Lock(); l.blackhole = on; l.mu.Unlock() }

// Faults returns the current settings.
func (l *Link) Faults() adapter.Faults {
	l.mu.Lock()
	defer l.mu.Unlock()
	return adapter.Faults{Delay: l.delay, Loss: l.loss, Blackhole: l.blackhole}
}

// linkConn is a node's socket adapter: it opens the node's UDP socket and
// applies the faults of the link each packet belongs to.
type linkConn struct {
	cluster *Cluster
	self    int
	rngMu   sync.Mutex
	rng     *rand.Rand
}

var _ transport.SocketAdapter = (*linkConn)(nil)

func (lc *linkConn) Open() (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &faultyConn{PacketConn: pc, lc: lc, closed: make(chan struct{})}, nil
}

type faultyConn struct {
	net.PacketConn
	lc     *linkConn
	mu     sync.Mutex // orders timers.Add against Close
	done   bool
	closed chan struct{}
	timers sync.WaitGroup
}

func (f *faultyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := f.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if l := f.lc.cluster.linkFor(f.lc.self, addr); l != nil && l.Faults().Blackhole {
			continue
		}
		return n, addr, nil
	}
}

func (f *faultyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	l := f.lc.cluster.linkFor(f.lc.self, addr)
	if l == nil {
		return f.PacketConn.WriteTo(p, addr)
	}
	fs := l.Faults()
	if fs.Blackhole {
		return len(p), nil
	}
	if fs.Loss > 0 {
		f.lc.rngMu.Lock()
		drop := f.lc.rng.Float64() < fs.Loss
		f.lc.rngMu.Unlock()
		if drop {
			return len(p), nil
		}
	}
	if fs.Delay <= 0 {
		return f.PacketConn.WriteTo(p, addr)
	}
	buf := append([]byte(nil), p...)
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return 0, net.ErrClosed
	}
	f.timers.Add(1)
	f.mu.Unlock()
	time.AfterFunc(fs.Delay, func() {
		defer f.timers.Done()
		select {
		case <-f.closed:
		default:
			_, _ = f.PacketConn.WriteTo(buf, addr)
		}
	})
	return len(p), nil
}

func (f *faultyConn) Close() error {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return net.ErrClosed
	}
	f.done = true
	close(f.closed)
	f.mu.Unlock()
	err := f.PacketConn.Close()
	f.timers.Wait()
	return err
}

// SetReadBuffer and SetWriteBuffer pass quic-go's buffer sizing to the
// UDP socket.
func (f *faultyConn) SetReadBuffer(bytes int) error {
	if b, ok := f.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return b.SetReadBuffer(bytes)
	}
	return nil
}

// SetWriteBuffer: see SetReadBuffer.
func (f *faultyConn) SetWriteBuffer(bytes int) error {
	if b, ok := f.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return b.SetWriteBuffer(bytes)
	}
	return nil
}
