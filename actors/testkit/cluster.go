package testkit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/transport/adapter"
)

// ClusterConfig configures NewCluster. Zero fields mean the defaults.
type ClusterConfig struct {
	// Name returns node i's name; default "node<i>@localhost".
	Name func(i int) string
	// Node is the base configuration of every node; Name, Adapter and
	// DiscoveryDir are set by the cluster. DisableDNS is always set. With
	// neither ClusterSecret nor OpenCluster set, the cluster makes a random
	// secret of its own: its nodes admit each other and no other node,
	// and the user's cookie file is neither created nor read.
	Node actors.Config
	// Seed seeds the links' loss decisions; default 1.
	Seed uint64
}

// Cluster is N Cask nodes in one process on loopback, finding each other
// through a shared discovery directory, with a fault handle per link.
type Cluster struct {
	nodes   []*actors.Node
	sockets []*adapter.Faulty // node i's socket adapter
	dir     string
	seed    uint64
	mu      sync.Mutex
	links   map[[2]int]*Link // guarded by mu
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
	if len(cfg.Node.ClusterSecret) == 0 && !cfg.Node.OpenCluster {
		// A secret of the cluster's own: its nodes admit each other and
		// nothing else, and the test never creates or reads the user's
		// cookie file.
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		cfg.Node.ClusterSecret = secret
	}
	dir, err := os.MkdirTemp("", "cask-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, seed: cfg.Seed, links: make(map[[2]int]*Link)}
	for i := 0; i < n; i++ {
		socket := adapter.NewFaulty(nil) // UDP on 127.0.0.1
		c.sockets = append(c.sockets, socket)
		nc := cfg.Node
		nc.Name = cfg.Name(i)
		nc.Dist.DiscoveryDir = dir
		nc.Dist.DisableDNS = true
		nc.Transport.Adapter = socket
		node, err := actors.Start(context.Background(), nc)
		if err != nil {
			c.Stop()
			return nil, fmt.Errorf("testkit: start %s: %w", nc.Name, err)
		}
		c.nodes = append(c.nodes, node)
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
// directions: the link's one adapter.Rule is installed on a's socket for
// b's listening address and on b's socket for a's.
func (c *Cluster) Link(a, b int) *Link {
	if a > b {
		a, b = b, a
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.links[[2]int{a, b}]
	if !ok {
		rule := adapter.NewRule()
		rule.SetSeed(c.seed ^ uint64(a)<<42 ^ uint64(b)<<21)
		if a != b {
			c.sockets[a].SetDest(c.nodes[b].Addr(), rule)
			c.sockets[b].SetDest(c.nodes[a].Addr(), rule)
		}
		l = &Link{rule: rule}
		c.links[[2]int{a, b}] = l
	}
	return l
}

// Link is the fault handle of one link, a view of its adapter.Rule. Safe
// for concurrent use; changes apply to the next packet.
type Link struct {
	rule *adapter.Rule
}

// SetDelay adds d to every packet in each direction (the round trip grows
// by 2d). Packets keep their order.
func (l *Link) SetDelay(d time.Duration) { l.rule.SetDelay(d) }

// SetLoss drops each packet with probability rate (clamped to 0..1),
// each direction. The drops are seeded by ClusterConfig.Seed.
func (l *Link) SetLoss(rate float64) { l.rule.SetLoss(rate) }

// SetBlackhole drops every packet in both directions while on.
func (l *Link) SetBlackhole(on bool) { l.rule.SetBlackhole(on) }

// Faults returns the current settings.
func (l *Link) Faults() adapter.Faults { return l.rule.Faults() }
