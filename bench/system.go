package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// Node is one running actor-system node of a System under test.
type Node interface {
	// Root is the node's root context, used to spawn the workload actors
	// and to issue RequestFuture calls.
	Root() *actor.RootContext
	// PID names actor `name` on this node the way another node addresses
	// it (cask: node name; protoactor: host:port).
	PID(name string) *actor.PID
	// Stop shuts the node down and releases its sockets and goroutines.
	Stop() error
}

// System starts nodes of one distribution layer.
type System interface {
	// Name is the column header: "cask", "protoactor" or "limit".
	Name() string
	// Start starts a fresh node listening on 127.0.0.1 (ephemeral port).
	// id is unique within the run. peers are nodes this node may need to
	// reach; a system with static discovery records their addresses, a
	// system that dials by address ignores them.
	Start(ctx context.Context, id string, peers ...Node) (Node, error)
	// Connect makes sure from can reach to. Systems that connect lazily
	// on first send return nil at once. Callers always follow it with a
	// real request, and time both together.
	Connect(ctx context.Context, from, to Node) error
}

var (
	registryMu sync.Mutex
	registry   = map[string]System{}
)

// Register makes a System selectable by name. Called from init functions.
func Register(s System) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[s.Name()] = s
}

// Lookup returns the registered system called name.
func Lookup(name string) (System, bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	s, ok := registry[name]
	return s, ok
}

// Registered lists the names of the registered systems, cask first.
func Registered() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	var names []string
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return columnRank(names[i]) < columnRank(names[j]) })
	return names
}

// Column names, in table order.
const (
	ColCask       = "cask"
	ColProtoactor = "protoactor"
	// ColLimit is the same actors in one actor system, each message
	// encoded and decoded once on its way (see limitSystem).
	ColLimit = "limit"
	ColRaw   = "raw"
	// ColCaskMetrics is Cask with an OpenTelemetry MeterProvider on every
	// node (CaskWithMetrics), next to cask for the cost of metrics.
	ColCaskMetrics = "cask+metrics"
)

// columns lists every column in table order.
var columns = []string{ColCask, ColCaskMetrics, ColProtoactor, ColLimit, ColRaw}

func columnRank(name string) int {
	for i, c := range columns {
		if c == name {
			return i
		}
	}
	return len(columns)
}

// networked leaves out the systems that have no connections to measure
// (the limit), for the workloads about connections themselves.
func networked(systems []System) []System {
	var out []System
	for _, s := range systems {
		if s.Name() != ColLimit {
			out = append(out, s)
		}
	}
	return out
}

// stopAll stops nodes concurrently and joins their errors.
func stopAll(nodes ...Node) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	for _, n := range nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func(n Node) {
			defer wg.Done()
			if err := n.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}(n)
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("stop: %s", strings.Join(errs, "; "))
	}
	return nil
}
