package actors_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// floodSize is the number of fresh identities an attacker presents:
// 1,000 (200 under the race detector), or CASK_FLOOD_IDENTITIES.
func floodSize() int {
	if v, err := strconv.Atoi(os.Getenv("CASK_FLOOD_IDENTITIES")); err == nil && v > 0 {
		return v
	}
	if raceEnabled {
		return 200
	}
	return 1000
}

// attacker dials a victim from one UDP socket with many identities: its
// Authenticator runs the identity of the ctx each Dial is given.
type attacker struct {
	tr *transport.Transport
}

type attackerIdentity struct{}

func (attacker) Authenticate(ctx context.Context, c *transport.Conn, role transport.Role) (transport.Identity, error) {
	a, _ := ctx.Value(attackerIdentity{}).(*identity.Authenticator)
	if a == nil {
		return transport.Identity{}, errors.New("attacker: no identity in ctx")
	}
	return a.Authenticate(ctx, c, role)
}

func startAttacker(t *testing.T) *attacker {
	t.Helper()
	tr, err := transport.New(transport.Config{
		ListenAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Authenticator: attacker{}, HandshakeTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &attacker{tr: tr}
}

// floodResult is what one flood achieved.
type floodResult struct {
	identities    int // identities tried
	authenticated int // passed the identity handshake
	sessions      int // dist hello accepted: a session on the victim
	refusedSecret int // refused with ErrClusterSecret (typed, as the attacker sees it)
	refusedFirst  int // refused with ErrFirstContactLimit
	refusedPeers  int // dist hello refused with TOO_MANY_PEERS
	otherErrs     map[string]int
	elapsed       time.Duration // from the first dial to the last answer
	conns         []*transport.Conn
}

// flood presents n fresh identities (evilN@localhost) to victim, 32 at a
// time; an identity that authenticates sends a dist hello and keeps its
// connection open (the flood's state) until the test ends.
func (a *attacker) flood(t *testing.T, victim *actors.Node, n int, secret []byte) *floodResult {
	t.Helper()
	res := &floodResult{identities: n, otherErrs: make(map[string]int)}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				conn, welcome, err := a.attack(victim, i, secret)
				mu.Lock()
				switch {
				case err == nil && welcome.GetAccepted():
					res.authenticated++
					res.sessions++
					res.conns = append(res.conns, conn)
				case err == nil && welcome.GetReason() == caskpb.RejectReason_REJECT_REASON_TOO_MANY_PEERS:
					res.authenticated++
					res.refusedPeers++
				case errors.Is(err, identity.ErrClusterSecret) && errors.Is(err, identity.ErrPeerRejected):
					res.refusedSecret++
				case errors.Is(err, identity.ErrFirstContactLimit) && errors.Is(err, identity.ErrPeerRejected):
					res.refusedFirst++
				case err != nil:
					res.otherErrs[err.Error()]++
				default:
					res.authenticated++
					res.otherErrs["dist hello refused: "+welcome.GetReason().String()]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	t.Cleanup(func() {
		for _, c := range res.conns {
			_ = c.CloseWithError(transport.CodeShutdown, "test over")
		}
	})
	return res
}

// attack runs identity i against victim: identity handshake, then a dist
// hello on a control stream, answered by a welcome.
func (a *attacker) attack(victim *actors.Node, i int, secret []byte) (*transport.Conn, *caskpb.DistWelcome, error) {
	name := fmt.Sprintf("evil%d@localhost", i)
	seed := sha256.Sum256([]byte("flood " + name))
	auth, err := identity.New(identity.Config{
		Name: name, Keys: identity.NewMemoryKeyStore(ed25519.NewKeyFromSeed(seed[:])),
		ClusterSecret: secret, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = context.WithValue(identity.WithExpectedPeer(ctx, victim.Name()), attackerIdentity{}, auth)
	conn, err := a.tr.Dial(ctx, victim.Addr())
	if err != nil {
		return nil, nil, err
	}
	ctrl, err := conn.OpenStream(ctx)
	if err != nil {
		conn.CloseWithError(transport.CodeShutdown, "")
		return nil, nil, err
	}
	dl, _ := ctx.Deadline()
	_ = ctrl.SetDeadline(dl)
	hello, _ := proto.Marshal(&caskpb.DistHello{
		Node: name, Incarnation: uint64(i) + 1, ToNode: victim.Name(),
		MinVersion: dist.MinProtocolVersion, MaxVersion: dist.MaxProtocolVersion,
	})
	if _, err := ctrl.Write(transport.AppendFrame(nil, hello)); err != nil {
		conn.CloseWithError(transport.CodeShutdown, "")
		return nil, nil, err
	}
	frame, err := transport.ReadFrame(bufio.NewReader(ctrl), nil, 64<<10)
	var w caskpb.DistWelcome
	if err == nil {
		err = proto.Unmarshal(frame, &w)
	}
	if err != nil {
		conn.CloseWithError(transport.CodeShutdown, "")
		return nil, nil, fmt.Errorf("read welcome: %w", err)
	}
	_ = ctrl.SetDeadline(time.Time{})
	if !w.GetAccepted() {
		conn.CloseWithError(transport.CodeShutdown, "")
	}
	return conn, &w, nil
}

// processState is the process's goroutines and live heap after a GC.
type processState struct {
	goroutines int
	heap       uint64
}

func measure() processState {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return processState{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc}
}

func (s processState) String() string {
	return fmt.Sprintf("%d goroutines, %.1f MiB heap", s.goroutines, float64(s.heap)/(1<<20))
}

// settle polls until the goroutine count drops to at most limit or the
// deadline passes, and returns the last measurement.
func settle(limit int, deadline time.Duration) processState {
	end := time.Now().Add(deadline)
	for {
		s := measure()
		if s.goroutines <= limit || time.Now().After(end) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func trustedFiles(t *testing.T, dataDir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, "keys", "trusted"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".pub") && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

func startVictim(t *testing.T, cfg actors.Config) *actors.Node {
	t.Helper()
	cfg.Name = "victim@localhost"
	cfg.Transport.ListenAddr = "127.0.0.1:0"
	cfg.Dist.DisableDNS = true
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := actors.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	return n
}

func (r *floodResult) String() string {
	return fmt.Sprintf("%d identities in %v: %d authenticated, %d sessions; refused: %d cluster secret, %d first-contact limit, %d MaxPeers; other errors %v",
		r.identities, r.elapsed.Round(time.Millisecond), r.authenticated, r.sessions,
		r.refusedSecret, r.refusedFirst, r.refusedPeers, r.otherErrs)
}

// TestFloodDefaultConfigAdmitsNone: 1,000 fresh identities without the
// cluster secret against a node with the default configuration (cookie
// on) from one socket: none is admitted, none pinned, every refusal is
// typed, and the node's goroutines and heap return to where they were.
func TestFloodDefaultConfigAdmitsNone(t *testing.T) {
	dataDir := t.TempDir()
	victim := startVictim(t, actors.Config{DataDir: dataDir})
	a := startAttacker(t)
	before := measure()

	res := a.flood(t, victim, floodSize(), nil)
	t.Logf("default config: %v", res)
	if res.authenticated != 0 || res.sessions != 0 {
		t.Fatalf("flood without the secret: %v; want 0 admitted", res)
	}
	if res.refusedSecret != res.identities {
		t.Fatalf("flood without the secret: %v; want every refusal typed ErrClusterSecret", res)
	}
	if n := trustedFiles(t, dataDir); n != 0 {
		t.Fatalf("%d trusted-key files written for refused identities, want 0", n)
	}
	if nodes := victim.Nodes(); len(nodes) != 0 {
		t.Fatalf("victim has sessions with %v", nodes)
	}
	after := settle(before.goroutines+20, 10*time.Second)
	t.Logf("process before the flood: %v; after: %v", before, after)
	if after.goroutines > before.goroutines+20 {
		t.Fatalf("goroutines %d after the flood, %d before: refused strangers left state behind", after.goroutines, before.goroutines)
	}
	if after.heap > before.heap+16<<20 {
		t.Fatalf("heap %v after the flood, %v before", after, before)
	}
}

// TestFloodOpenClusterBounded: the same flood against an open cluster
// (the opt-out; trust on first use) is bounded by MaxPeers, the cap on
// trusted keys and the first-contact rate.
func TestFloodOpenClusterBounded(t *testing.T) {
	t.Run("caps", func(t *testing.T) {
		dataDir := t.TempDir()
		const maxPeers, maxKeys = 40, 120
		victim := startVictim(t, actors.Config{
			DataDir: dataDir, OpenCluster: true, MaxTrustedKeys: maxKeys,
			FirstContactRate: 1e6, FirstContactBurst: 1 << 20,
			Dist: dist.Config{MaxPeers: maxPeers},
		})
		a := startAttacker(t)
		before := measure()
		res := a.flood(t, victim, floodSize(), nil)
		t.Logf("open cluster, MaxPeers %d, MaxTrustedKeys %d: %v", maxPeers, maxKeys, res)
		held := measure()
		t.Logf("process before the flood: %v; while the attacker holds its sessions: %v", before, held)
		if res.sessions > maxPeers || res.sessions == 0 {
			t.Fatalf("%d sessions, want 1..MaxPeers %d", res.sessions, maxPeers)
		}
		if res.authenticated > maxKeys || res.refusedFirst != res.identities-res.authenticated {
			t.Fatalf("%v: want at most MaxTrustedKeys %d authenticated, the rest refused ErrFirstContactLimit", res, maxKeys)
		}
		if n := trustedFiles(t, dataDir); n > maxKeys {
			t.Fatalf("%d trusted-key files, cap %d", n, maxKeys)
		}
		if res.refusedPeers == 0 && res.authenticated > maxPeers {
			t.Fatalf("%v: authenticated past MaxPeers but none refused TOO_MANY_PEERS", res)
		}
	})
	t.Run("rate", func(t *testing.T) {
		const rate, burst = 50, 60
		victim := startVictim(t, actors.Config{
			OpenCluster: true, FirstContactRate: rate, FirstContactBurst: burst,
		})
		a := startAttacker(t)
		res := a.flood(t, victim, floodSize()/2, nil)
		limit := burst + int(rate*res.elapsed.Seconds()) + 1
		t.Logf("open cluster, first contacts %d/s burst %d: %v (bucket allows %d)", rate, burst, res, limit)
		if res.authenticated > limit {
			t.Fatalf("%d new identities admitted in %v, the bucket allows %d", res.authenticated, res.elapsed, limit)
		}
		if res.authenticated < burst {
			t.Fatalf("%d admitted, less than the burst %d: honest first contacts starve", res.authenticated, burst)
		}
	})
}

// TestFloodOpenClusterUnlimited lifts every cap: each identity then gets
// a session, as every one did before admission was bounded. It shows the
// bounds above come from the caps, and gives the "before" figures (a
// quarter of the flood by default, to keep the suite quick; set
// CASK_FLOOD_IDENTITIES=1000 for the full one).
func TestFloodOpenClusterUnlimited(t *testing.T) {
	n := floodSize()
	if os.Getenv("CASK_FLOOD_IDENTITIES") == "" {
		n /= 4
	}
	dataDir := t.TempDir()
	victim := startVictim(t, actors.Config{
		DataDir: dataDir, OpenCluster: true, MaxTrustedKeys: 1 << 20,
		FirstContactRate: 1e6, FirstContactBurst: 1 << 20,
		Dist: dist.Config{MaxPeers: 1 << 20},
	})
	a := startAttacker(t)
	before := measure()
	res := a.flood(t, victim, n, nil)
	held := measure()
	t.Logf("open cluster, caps lifted: %v", res)
	t.Logf("process before the flood: %v; while the attacker holds its sessions: %v; %d trusted-key files",
		before, held, trustedFiles(t, dataDir))
	if res.sessions != n {
		t.Fatalf("%v: with the caps lifted every identity should get a session", res)
	}
}
