package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// openFiles counts this process's open file descriptors.
func openFiles(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open files: %v", err)
	}
	return len(ents)
}

// waitFiles waits until at most limit files are open and returns the count.
func waitFiles(t testing.TB, limit int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := openFiles(t)
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// plainPacketConn hides *net.UDPConn's extra methods, as a relay or fault
// adapter's conn would.
type plainPacketConn struct{ net.PacketConn }

// readResult is one read's outcome.
type readResult struct {
	n   int
	err error
}

// TestPathSocketRetire checks the socket wrapper of migration paths on its
// own, for a UDP socket and for a plain PacketConn, through every read
// method quic-go may use: retire releases the descriptor (the port can be
// bound again) while reads stay blocked and writes succeed silently; a
// read deadline still ends a blocked read; Close ends it with
// net.ErrClosed; no goroutine is left behind.
func TestPathSocketRetire(t *testing.T) {
	type reader func(s net.PacketConn, b []byte) (int, error)
	readFrom := func(s net.PacketConn, b []byte) (int, error) { n, _, err := s.ReadFrom(b); return n, err }
	readMsg := func(s net.PacketConn, b []byte) (int, error) {
		n, _, _, _, err := s.(*udpPathSocket).ReadMsgUDP(b, make([]byte, 64))
		return n, err
	}
	// The raw connection's Read, as x/net's batched reader (recvmmsg) uses it.
	rawRead := func(s net.PacketConn, b []byte) (int, error) {
		raw, err := s.(*udpPathSocket).SyscallConn()
		if err != nil {
			return 0, err
		}
		var n int
		var rerr error
		err = raw.Read(func(fd uintptr) bool {
			n, _, rerr = syscall.Recvfrom(int(fd), b, 0)
			return !errors.Is(rerr, syscall.EAGAIN)
		})
		if err == nil {
			err = rerr
		}
		return n, err
	}
	for _, tc := range []struct {
		name  string
		plain bool
		read  reader
	}{
		{"udp/ReadFrom", false, readFrom},
		{"udp/ReadMsgUDP", false, readMsg},
		{"udp/raw", false, rawRead},
		{"plain/ReadFrom", true, readFrom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			filesBefore := openFiles(t)
			udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			var pc net.PacketConn = udp
			if tc.plain {
				pc = plainPacketConn{udp}
			}
			s := newPathSocket(pc)
			if _, ok := s.(*udpPathSocket); ok == tc.plain {
				t.Fatalf("newPathSocket(%T) gave %T", pc, s)
			}
			addr := s.LocalAddr()
			peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()

			reads := make(chan readResult, 1)
			read := func() {
				go func() {
					b := make([]byte, 1500)
					n, err := tc.read(s, b)
					reads <- readResult{n, err}
				}()
			}
			blocked := func(what string) {
				t.Helper()
				select {
				case r := <-reads:
					t.Fatalf("%s: read returned %d, %v", what, r.n, r.err)
				case <-time.After(100 * time.Millisecond):
				}
			}
			done := func(what string) readResult {
				t.Helper()
				select {
				case r := <-reads:
					return r
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: read still blocked", what)
					return readResult{}
				}
			}

			// Live: it is the socket.
			read()
			if _, err := peer.WriteTo([]byte("live"), addr); err != nil {
				t.Fatal(err)
			}
			if r := done("live"); r.err != nil || r.n != 4 {
				t.Fatalf("live read: %d, %v", r.n, r.err)
			}
			if _, err := s.WriteTo([]byte("out"), peer.LocalAddr()); err != nil {
				t.Fatalf("live write: %v", err)
			}

			// Retire with a read blocked on the socket.
			read()
			blocked("before retire")
			socketOf(s).retire()
			if n := waitFiles(t, filesBefore+1, 2*time.Second); n > filesBefore+1 { // +1: peer
				t.Fatalf("open files after retire: %d, before the socket: %d (+1 for the peer)", n, filesBefore)
			}
			again, err := net.ListenUDP("udp", addr.(*net.UDPAddr))
			if err != nil {
				t.Fatalf("the retired socket's port is still bound: %v", err)
			}
			_ = again.Close()
			blocked("after retire")
			if n, err := s.WriteTo([]byte("dropped"), peer.LocalAddr()); err != nil || n != 7 {
				t.Fatalf("write after retire: %d, %v (want silent success)", n, err)
			}
			if u, ok := s.(*udpPathSocket); ok {
				if n, _, err := u.WriteMsgUDP([]byte("dropped"), nil, peer.LocalAddr().(*net.UDPAddr)); err != nil || n != 7 {
					t.Fatalf("WriteMsgUDP after retire: %d, %v", n, err)
				}
			}
			if s.LocalAddr().String() != addr.String() {
				t.Fatalf("LocalAddr after retire: %v, was %v", s.LocalAddr(), addr)
			}

			// A read deadline ends the wait (quic.Transport.Close uses it),
			// and resetting it makes reads block again.
			if err := s.SetReadDeadline(time.Now()); err != nil {
				t.Fatal(err)
			}
			var ne net.Error
			if r := done("deadline"); !errors.As(r.err, &ne) || !ne.Timeout() || !errors.Is(r.err, os.ErrDeadlineExceeded) {
				t.Fatalf("read after the deadline: %v", r.err)
			}
			if err := s.SetReadDeadline(time.Time{}); err != nil {
				t.Fatal(err)
			}
			read()
			blocked("after the deadline was reset")

			// Close ends it for good.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if r := done("close"); !errors.Is(r.err, net.ErrClosed) {
				t.Fatalf("read after Close: %v", r.err)
			}
			if _, err := s.WriteTo([]byte("x"), peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("write after Close: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			socketOf(s).retire() // after Close: nothing
		})
	}
}

// TestPathSocketCloseWithoutRetire: a path still in use when the
// connection ends is closed like a plain socket.
func TestPathSocketCloseWithoutRetire(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := newPathSocket(udp)
	reads := make(chan error, 1)
	go func() {
		_, _, err := s.ReadFrom(make([]byte, 100))
		reads <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reads:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked after Close")
	}
	if _, err := udp.WriteTo([]byte("x"), udp.LocalAddr()); err == nil {
		t.Fatal("socket still open after Close")
	}
}

// TestMigrateManyTimesFilesFlat migrates one connection far past quic-go's
// habit of keeping every path's socket (it used to be capped at 16) while
// a stream carries numbered frames both ways: every frame comes back once
// and in order, and the open files after the last migration are those
// before the first plus the path in use.
func TestMigrateManyTimesFilesFlat(t *testing.T) {
	const migrations = 200
	a := startTransport(t, Config{})
	b := startTransport(t, Config{})
	dialed, accepted := connect(t, a, b)
	wait := echoStreams(t, accepted)
	roundTrip(t, dialed, []byte("warm up"))
	filesBefore := openFiles(t)

	ctx := testContext(t, 2*time.Minute)
	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	sent := make(chan uint64, 1)
	var echoed atomic.Uint64
	go func() { // numbered frames, at most window of them not echoed yet
		const window = 1024
		var seq uint64
		defer func() { _ = s.Close(); sent <- seq }()
		var b [8]byte
		for {
			select {
			case <-stop:
				return
			default:
			}
			if seq-echoed.Load() >= window {
				runtime.Gosched()
				continue
			}
			binary.BigEndian.PutUint64(b[:], seq+1)
			if _, err := s.Write(b[:]); err != nil {
				return
			}
			seq++
		}
	}()
	received := make(chan error, 1)
	var got uint64
	go func() {
		var b [8]byte
		for {
			if _, err := io.ReadFull(s, b[:]); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				received <- err
				return
			}
			if v := binary.BigEndian.Uint64(b[:]); v != got+1 {
				received <- errors.New("frame out of order, lost or duplicated")
				return
			}
			got++
			echoed.Store(got)
		}
	}()

	start := time.Now()
	var each []time.Duration
	for i := range migrations {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		err := dialed.Migrate(mctx, nil)
		each = append(each, time.Since(t0))
		cancel()
		if err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	took := time.Since(start)
	slices.Sort(each)
	t.Logf("migration time p50 %v p90 %v max %v", each[len(each)/2], each[len(each)*9/10], each[len(each)-1])
	close(stop)
	n := <-sent
	select {
	case err := <-received:
		if err != nil {
			t.Fatalf("after %d of %d frames: %v", got, n, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("echo incomplete: %d of %d frames", got, n)
	}
	if got != n {
		t.Fatalf("echoed %d frames, sent %d", got, n)
	}
	if m := dialed.Stats().Migrations; m != migrations {
		t.Fatalf("Migrations = %d, want %d", m, migrations)
	}
	// The path in use has a socket; the one left last drains for a while.
	files := waitFiles(t, filesBefore+1, 5*time.Second)
	t.Logf("%d migrations in %v (%v each) with %d frames echoed; open files %d before, %d after",
		migrations, took.Round(time.Millisecond), (took / migrations).Round(time.Microsecond), n, filesBefore, files)
	if files > filesBefore+1 {
		t.Fatalf("open files: %d before the migrations, %d after %d of them", filesBefore, files, migrations)
	}
	roundTrip(t, dialed, []byte("still fine"))
	_ = dialed.CloseWithError(CodeNone, "")
	wait()
	// The connection's end releases the last path too.
	if files := waitFiles(t, filesBefore, 5*time.Second); files > filesBefore {
		t.Fatalf("open files after the connection ended: %d, before the migrations %d", files, filesBefore)
	}
}

// TestLeftPathDrainsUntilQuiet checks the rule for the path a migration
// left: its socket stays open while packets keep arriving on it (the peer
// has not moved yet), and is released once nothing arrived for the drain
// time.
func TestLeftPathDrainsUntilQuiet(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := newPathSocket(udp)
	defer func() { _ = s.Close() }() // before the leak check, on failure too
	p := &migrationPath{pc: s}
	readerDone := make(chan struct{})
	go func() { // what quic.Transport's read loop does
		defer close(readerDone)
		b := make([]byte, 100)
		for {
			if _, _, err := s.ReadFrom(b); err != nil {
				return
			}
		}
	}()
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	const drain = 100 * time.Millisecond
	p.drainThenRetire(drain)
	// The peer keeps sending for four drain times: the socket stays.
	var quiet time.Time // when the last packet went out
	var maxGap time.Duration
	for end := time.Now().Add(4 * drain); time.Now().Before(end); {
		if _, err := peer.WriteTo([]byte("still here"), s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		if !quiet.IsZero() {
			maxGap = max(maxGap, time.Since(quiet))
		}
		quiet = time.Now()
		time.Sleep(drain / 10)
	}
	switch {
	case maxGap >= drain/2 || time.Since(quiet) >= drain/2:
		// The machine held this goroutine for half a drain time: the
		// path may rightly have counted as quiet. Only the second half
		// of the rule can be judged.
		t.Logf("a gap of %v between packets (drain %v): not judging whether the path stayed", maxGap, drain)
	case socketOf(s).isRetired():
		t.Fatal("path retired while the peer was still sending to it")
	}
	// Then it goes quiet: retired within a few drain times.
	for !socketOf(s).isRetired() {
		if time.Since(quiet) > 5*time.Second {
			t.Fatal("quiet path not retired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(quiet); d < drain/2 {
		t.Fatalf("retired %v after the last packet, drain time %v", d, drain)
	}
	// Retired, not closed: the read loop still waits.
	select {
	case <-readerDone:
		t.Fatal("read loop ended at retire")
	case <-time.After(50 * time.Millisecond):
	}
	p.retire() // again: nothing
	_ = s.Close()
	<-readerDone
}
