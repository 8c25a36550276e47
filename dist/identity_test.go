package dist_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
)

// rawTransportConfig is the transport of a hand-driven peer called name.
// Every node authenticates its peers (docs/security.md), so raw peers run
// the same identity handshake, with a key derived from name: repeated
// dials present the same identity, as a real node would. They prove the
// default cluster secret, as the nodes of these tests do.
func rawTransportConfig(t testing.TB, name string) transport.Config {
	t.Helper()
	secret, _, err := identity.DefaultClusterSecret()
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("cask dist test key " + name))
	auth, err := identity.New(identity.Config{
		Name: name, Keys: identity.NewMemoryKeyStore(ed25519.NewKeyFromSeed(seed[:])), Logger: quietLogger(),
		ClusterSecret: secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	return transport.Config{Logger: quietLogger(), Authenticator: auth}
}

func TestConnectAuthErrorsReachCaller(t *testing.T) {
	// b has a DataDir, so its identity is persistent and a pins it.
	b := startNode(t, "b@localhost", actors.Config{TrustMode: actors.TrustStrict, DataDir: t.TempDir(), Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})

	err := a.Connect(ctxTimeout(t), b.Name())
	if !errors.Is(err, dist.ErrConnectFailed) || !errors.Is(err, identity.ErrUntrustedKey) || !errors.Is(err, identity.ErrPeerRejected) {
		t.Fatalf("Connect to a strict node that does not know a: %v, want ErrConnectFailed and ErrUntrustedKey", err)
	}

	_, wrong, _ := ed25519.GenerateKey(rand.Reader)
	if err := b.TrustPeer(a.Name(), wrong.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	err = a.Connect(ctxTimeout(t), b.Name())
	if !errors.Is(err, dist.ErrConnectFailed) || !errors.Is(err, identity.ErrKeyMismatch) {
		t.Fatalf("Connect with a wrong key trusted for a: %v, want ErrKeyMismatch", err)
	}

	if err := b.TrustPeer(a.Name(), a.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("Connect once b trusts a: %v", err)
	}
	// a, in TOFU mode, recorded b's key on first contact.
	if k, ok, err := a.TrustedKey(b.Name()); err != nil || !ok || !k.Equal(b.PublicKey()) {
		t.Fatalf("a trusts %x %v %v for b", k, ok, err)
	}
}

// TestSendToUnauthenticatedPeerIsDeadLetter: a message to a node that
// fails authentication is never delivered; it becomes a dead letter whose
// reason says why.
func TestSendToUnauthenticatedPeerIsDeadLetter(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{TrustMode: actors.TrustStrict, Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	var delivered atomic.Int32
	if _, err := b.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); ok {
			delivered.Add(1)
		}
	}), "sink"); err != nil {
		t.Fatal(err)
	}
	dl := collectDeadLetters(t, a)
	target := actor.NewPID(b.Name(), "sink")
	a.Root().Send(target, wrapperspb.String("secret"))

	got := dl.waitFor(t, identity.ErrUntrustedKey)
	if !errors.Is(got.Reason, dist.ErrConnectFailed) || got.Node != b.Name() || !got.PID.Equal(target) {
		t.Errorf("dead letter %+v, want the message to %v failing with ErrConnectFailed", got, target)
	}
	if sv, ok := got.Message.(*wrapperspb.StringValue); !ok || sv.Value != "secret" {
		t.Errorf("dead letter carries %v, want the message sent", got.Message)
	}
	if n := delivered.Load(); n != 0 || len(b.Nodes()) != 0 || len(a.Nodes()) != 0 {
		t.Fatalf("delivered %d, sessions a=%v b=%v: nothing may pass an unauthenticated peer", n, a.Nodes(), b.Nodes())
	}
}

// TestIdentityPersistsAndRepins: with a DataDir a restarted node keeps its
// key; a node that comes back with a new key is refused (TOFU) until its
// peer re-pins it explicitly.
func TestIdentityPersistsAndRepins(t *testing.T) {
	dirA, dirB, discovery := t.TempDir(), t.TempDir(), t.TempDir()
	start := func(name, dir string) *actors.Node {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		n, err := actors.Start(ctx, actors.Config{Name: name, DataDir: dir, Logger: quietLogger(), Dist: dist.Config{DisableDNS: true, DiscoveryDir: discovery}})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		return n
	}
	b := start("b@localhost", dirB)
	a := start("a@localhost", dirA)
	defer func() { _ = a.Stop() }()
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatal(err)
	}
	keyB := b.PublicKey()
	if fi, err := os.Stat(filepath.Join(dirB, "keys", "node.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("node.key: %v %v, want mode 0600", fi, err)
	}
	if raw, err := os.ReadFile(filepath.Join(dirA, "keys", "trusted", "b@localhost.pub")); err != nil || !keyB.Equal(ed25519.PublicKey(raw)) {
		t.Fatalf("a's pin file for b: %x %v", raw, err)
	}
	_ = b.Stop()

	// Same DataDir: same key, reconnects.
	b = start("b@localhost", dirB)
	if !b.PublicKey().Equal(keyB) {
		t.Fatal("restart changed the key")
	}
	eventually(t, waitTimeout, func() bool { return a.Connect(ctxTimeout(t), b.Name()) == nil }, "reconnect to restarted b")
	_ = b.Stop()

	// New DataDir: new key, refused until re-pinned.
	b = start("b@localhost", t.TempDir())
	defer func() { _ = b.Stop() }()
	var err error
	eventually(t, waitTimeout, func() bool {
		err = a.Connect(ctxTimeout(t), b.Name())
		return errors.Is(err, identity.ErrKeyMismatch)
	}, "Connect to b with a new key fails with ErrKeyMismatch (last: %v)", err)
	if err := a.TrustPeer(b.Name(), b.PublicKey()); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("Connect after TrustPeer: %v", err)
	}
}

func TestStartRefusesMismatchedKeyPair(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, "a@localhost", actors.Config{DataDir: dir, Dist: dist.Config{DisableDNS: true}})
	_ = n.Stop()
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := os.WriteFile(filepath.Join(dir, "keys", "node.pub"), other.Public().(ed25519.PublicKey), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	n, err := actors.Start(ctx, actors.Config{Name: "a@localhost", DataDir: dir, Logger: quietLogger(), Dist: dist.Config{DisableDNS: true}})
	if err == nil {
		_ = n.Stop()
		t.Fatal("Start accepted a node.pub that is not node.key's")
	}
	if !errors.Is(err, identity.ErrKeyPairMismatch) {
		t.Fatalf("Start: %v, want ErrKeyPairMismatch", err)
	}
}

func TestClusterSecret(t *testing.T) {
	secret := []byte("correct horse battery staple")
	b := startNode(t, "b@localhost", actors.Config{ClusterSecret: secret, Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{ClusterSecret: secret, Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("same secret: %v", err)
	}
	c := startNode(t, "c@localhost", actors.Config{ClusterSecret: []byte("guess"), Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	if err := c.Connect(ctxTimeout(t), b.Name()); !errors.Is(err, identity.ErrClusterSecret) {
		t.Fatalf("wrong secret: %v, want ErrClusterSecret", err)
	}
}

// TestBadPeersLoseOnlyTheirConnection: peers flooding garbage into the
// identity handshake, and peers stalling it, lose their own connections
// only; an authenticated peer's requests keep being answered throughout.
func TestBadPeersLoseOnlyTheirConnection(t *testing.T) {
	const handshake = 500 * time.Millisecond
	b := startNode(t, "b@localhost", actors.Config{Transport: transport.Config{HandshakeTimeout: handshake}, Dist: dist.Config{DisableDNS: true}})
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	echo := spawnEcho(t, b, "echo")
	mustEcho(t, a, echo, "before")

	stop := make(chan struct{})
	var echoes atomic.Int64
	var echoErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := echoRequest(a, echo, "x"); err != nil {
				echoErr.Store(err)
				return
			}
			echoes.Add(1)
		}
	}()

	raw, err := transport.New(transport.Config{Logger: quietLogger()}) // no identity at all
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Start(); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx := ctxTimeout(t)
	junk := make([]byte, 64<<10)
	_, _ = rand.Read(junk)
	const flooders, stallers = 8, 4
	var conns []*transport.Conn
	for i := range flooders + stallers {
		c, err := raw.Dial(ctx, b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i < flooders {
			s, err := c.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			s.SetWriteDeadline(time.Now().Add(waitTimeout))
			go func() { // may fail once b closes the conn
				for range 16 {
					if _, err := s.Write(junk); err != nil {
						return
					}
				}
			}()
		}
	}
	for i, c := range conns {
		select {
		case <-c.Context().Done():
		case <-time.After(handshake + 3*time.Second):
			t.Fatalf("bad peer %d still connected", i)
		}
		var ce *transport.CloseError
		cause := context.Cause(c.Context())
		if !errors.As(cause, &ce) || !ce.Remote || (ce.Code != transport.CodeAuthFailed && ce.Code != transport.CodeHandshakeFailed) {
			t.Errorf("bad peer %d ended with %v, want a close by b", i, cause)
		}
	}
	before := echoes.Load()
	eventually(t, waitTimeout, func() bool { return echoes.Load() > before+10 }, "echoes keep flowing after the bad peers")
	close(stop)
	wg.Wait()
	if err, _ := echoErr.Load().(error); err != nil {
		t.Fatalf("honest traffic failed: %v", err)
	}
	if got := b.Nodes(); len(got) != 1 || got[0] != a.Name() {
		t.Fatalf("b's sessions %v, want only a", got)
	}
}
