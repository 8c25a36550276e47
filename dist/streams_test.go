package dist_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// acceptorOf spawns an actor on n that handles every inbound stream with
// handle on its own goroutine.
func acceptorOf(t *testing.T, n *actors.Node, tag string, handle func(*dist.Stream)) *actor.PID {
	t.Helper()
	pid := n.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*dist.StreamOpened); ok {
			go handle(m.Stream)
		}
	}))
	if err := n.RegisterAcceptor(tag, pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func echoStream(s *dist.Stream) {
	defer s.Close()
	io.Copy(s, s)
	s.CloseWrite()
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStreamEcho(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	acceptorOf(t, nodes[1], "echo", echoStream)
	s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Peer() != "n1@localhost" || s.Tag() != "echo" {
		t.Fatalf("peer %q tag %q", s.Peer(), s.Tag())
	}
	want := []byte("hello over a user stream")
	if _, err := s.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("echo %q", got)
	}
}

// A 64 MiB transfer with a checksum while small actor messages keep
// flowing on the same connection; their round-trip latency is reported.
func TestStreamBulkBesideMessages(t *testing.T) {
	const size = 64 << 20
	nodes := mesh(t, 2, actors.Config{})
	sums := make(chan [32]byte, 1)
	acceptorOf(t, nodes[1], "bulk", func(s *dist.Stream) {
		defer s.Close()
		h := sha256.New()
		io.Copy(h, s)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		sums <- sum
	})
	spawnNamed(t, nodes[1], replyProps(), "echo")
	s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "bulk")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	want := sha256.Sum256(data)
	sent := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		sent <- err
	}()
	var lat []time.Duration
	echo := actor.NewPID("n1@localhost", "echo")
	for done := false; !done; {
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
			t0 := time.Now()
			request(t, nodes[0], echo, wrapperspb.String("tick"))
			lat = append(lat, time.Since(t0))
		}
	}
	select {
	case got := <-sums:
		if got != want {
			t.Fatal("checksum mismatch")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("transfer did not finish")
	}
	took := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		t.Fatal("no message round trip completed during the transfer")
	}
	t.Logf("64 MiB in %v (%.0f MiB/s); %d message round trips meanwhile: p50 %v, p99 %v, max %v",
		took.Round(time.Millisecond), 64/took.Seconds(), len(lat),
		lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

func TestStreamTagRules(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	pid := nodes[1].Root().Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	if err := nodes[1].RegisterAcceptor("logs", pid); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].RegisterAcceptor("logs", pid); !errors.Is(err, dist.ErrTagInUse) {
		t.Fatalf("second acceptor: %v, want ErrTagInUse", err)
	}
	if err := nodes[1].RegisterAcceptor("cask:membership", pid); !errors.Is(err, dist.ErrReservedTag) {
		t.Fatalf("reserved tag: %v, want ErrReservedTag", err)
	}
	if err := nodes[1].RegisterAcceptor("", pid); !errors.Is(err, dist.ErrBadTag) {
		t.Fatalf("empty tag: %v, want ErrBadTag", err)
	}
	if _, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "cask:x"); !errors.Is(err, dist.ErrReservedTag) {
		t.Fatalf("open reserved tag: %v", err)
	}
	if _, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "nobody-listens"); !errors.Is(err, dist.ErrUnknownTag) {
		t.Fatalf("unknown tag: %v, want ErrUnknownTag", err)
	}
	// The connection is fine after a refusal.
	spawnNamed(t, nodes[1], replyProps(), "echo")
	request(t, nodes[0], actor.NewPID("n1@localhost", "echo"), wrapperspb.String("still up"))
}

func TestStreamAcceptorDeath(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	pid := acceptorOf(t, nodes[1], "echo", echoStream)
	if s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "echo"); err != nil {
		t.Fatal(err)
	} else {
		s.Close()
	}
	if err := nodes[1].Root().StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the tag to be refused", func() bool {
		s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "echo")
		if err == nil {
			s.Close()
		}
		return errors.Is(err, dist.ErrUnknownTag)
	})
	// The tag is free for a new acceptor.
	acceptorOf(t, nodes[1], "echo", echoStream)
}

func TestStreamPinsSession(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{Dist: dist.Config{ReapIdleAfter: 100 * time.Millisecond, ReapMinAge: 50 * time.Millisecond}})
	held := make(chan *dist.Stream, 1)
	acceptorOf(t, nodes[1], "hold", func(s *dist.Stream) { held <- s })
	s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "hold")
	if err != nil {
		t.Fatal(err)
	}
	remote := <-held
	time.Sleep(500 * time.Millisecond) // several reap periods
	if len(nodes[0].Nodes()) != 1 {
		t.Fatal("a session with an open user stream was reaped")
	}
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	remote.Close()
	waitFor(t, 5*time.Second, "the idle session to be reaped once the stream closed", func() bool {
		return len(nodes[0].Nodes()) == 0
	})
}

func TestStreamFailsWhenConnectionLost(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{Transport: transport.Config{IdleTimeout: 600 * time.Millisecond}})
	acceptorOf(t, nodes[1], "echo", echoStream)
	s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	nodes[1].Stop()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(s)
	if !errors.Is(err, dist.ErrConnectionLost) {
		t.Fatalf("read after the peer went away: %v, want ErrConnectionLost", err)
	}
}

// A user stream stays open across a migration of its connection, with no
// byte lost or reordered: the writer keeps writing while the dialing side
// moves the connection to 127.0.0.2.
func TestStreamSurvivesMigration(t *testing.T) {
	nodes := mesh(t, 2, actors.Config{})
	sums := make(chan [32]byte, 1)
	counts := make(chan int64, 1)
	acceptorOf(t, nodes[1], "bulk", func(s *dist.Stream) {
		defer s.Close()
		h := sha256.New()
		n, _ := io.Copy(h, s)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		counts <- n
		sums <- sum
	})
	s, err := nodes[0].OpenStream(ctx10(t), "n1@localhost", "bulk")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.LocalAddr().String()
	const chunk, chunks = 32 << 10, 512 // 16 MiB
	want := sha256.New()
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, chunk)
	migrated := make(chan error, 1)
	for i := 0; i < chunks; i++ {
		for j := range buf {
			buf[j] = byte(r.Uint32())
		}
		want.Write(buf)
		if _, err := s.Write(buf); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i == chunks/4 {
			go func() {
				migrated <- nodes[0].MigratePeer(ctx10(t), "n1@localhost", dist.MigrationLocalAddr("127.0.0.2"))
			}()
		}
	}
	if err := <-migrated; err != nil {
		t.Fatalf("migration during the transfer: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n := <-counts; n != chunk*chunks {
		t.Fatalf("acceptor read %d bytes, want %d", n, chunk*chunks)
	}
	var sum [32]byte
	copy(sum[:], want.Sum(nil))
	if got := <-sums; got != sum {
		t.Fatal("checksum mismatch after the migration")
	}
	if after := s.LocalAddr().String(); after == before {
		t.Fatalf("stream's connection still on %s after the migration", before)
	}
}
