package dist_test

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

func TestDiscoveryStatic(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, b, "echo")
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	mustEcho(t, a, actor.NewPID(b.Name(), "echo"), "static")
	// The acceptor sees the session too and can use it back.
	spawnEcho(t, a, "echo")
	eventually(t, waitTimeout, func() bool { return len(b.Nodes()) == 1 }, "b lists a (Nodes() = %v)", b.Nodes())
	mustEcho(t, b, actor.NewPID(a.Name(), "echo"), "back")
	if got := b.Nodes(); len(got) != 1 || got[0] != a.Name() {
		t.Errorf("b.Nodes() = %v, want [%s]", got, a.Name())
	}
}

func TestDiscoveryDir(t *testing.T) {
	dir := t.TempDir()
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, DiscoveryDir: dir}})
	spawnEcho(t, b, "echo")
	bFile := dist.EndpointFileName(dir, b.Name())
	content, err := os.ReadFile(bFile)
	if err != nil {
		t.Fatalf("endpoint file of b after Start: %v", err)
	}
	if got := strings.TrimSpace(string(content)); got != b.Addr().String() {
		t.Errorf("endpoint file of b = %q, want %q", got, b.Addr().String())
	}

	// Learning off: with it, a would still dial b's last address once
	// b's file is gone (TestLearnedAddressFromHello).
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, DiscoveryDir: dir, MaxLearnedAddrs: -1}})
	if _, err := os.Stat(dist.EndpointFileName(dir, a.Name())); err != nil {
		t.Errorf("endpoint file of a after Start: %v", err)
	}
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("Connect through the directory: %v", err)
	}
	mustEcho(t, a, actor.NewPID(b.Name(), "echo"), "dir")

	mon := monitorProbe(t, a, b.Name())
	mon.nodeUp(t, b.Name())
	if err := b.Stop(); err != nil {
		t.Fatalf("b.Stop: %v", err)
	}
	if _, err := os.Stat(bFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint file of b after Stop: stat err = %v, want it gone", err)
	}
	mon.nodeDown(t, b.Name())
	// With the file gone, b is unknown.
	if err := a.Connect(ctxTimeout(t), b.Name()); !errors.Is(err, dist.ErrUnknownNode) {
		t.Errorf("Connect after b stopped = %v, want %v", err, dist.ErrUnknownNode)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("a.Stop: %v", err)
	}
	if _, err := os.Stat(dist.EndpointFileName(dir, a.Name())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("endpoint file of a after Stop: stat err = %v, want it gone", err)
	}
}

// freeUDPPort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	return port
}

func TestDiscoveryDNS(t *testing.T) {
	if ips, err := net.LookupIP("localhost"); err != nil || len(ips) == 0 {
		t.Skipf("localhost does not resolve here: %v", err)
	}
	port := freeUDPPort(t)
	c := startNode(t, "c@localhost", actors.Config{Transport: transport.Config{ListenAddr: "127.0.0.1:" + strconv.Itoa(port)}, Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, c, "echo")
	d := startNode(t, "d@localhost", actors.Config{Dist: dist.Config{DiscoveryPort: port}})
	if err := d.Connect(ctxTimeout(t), c.Name()); err != nil {
		t.Fatalf("Connect through DNS (localhost, port %d): %v", port, err)
	}
	mustEcho(t, d, actor.NewPID(c.Name(), "echo"), "dns")
}

// TestDiscoveryChainOrder: the static map wins over the directory, and a
// node missing from the map is found in the directory.
func TestDiscoveryChainOrder(t *testing.T) {
	dir := t.TempDir()
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, DiscoveryDir: dir}})
	spawnEcho(t, b, "echo")
	c := startNode(t, "c@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, c, "echo")
	// A wrong directory entry for c, which the static map overrides.
	if err := dist.WriteEndpointFile(dir, c.Name(), b.Addr()); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, DiscoveryDir: dir, Peers: peersOf(c)}})
	mustEcho(t, a, actor.NewPID(c.Name(), "echo"), "static first")
	mustEcho(t, a, actor.NewPID(b.Name(), "echo"), "then the directory")
	if got := a.Nodes(); len(got) != 2 {
		t.Errorf("a.Nodes() = %v, want b and c", got)
	}
}
