package dist_test

import (
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
)

// A writer that sends past the credit its peer granted gets the stream
// reset with StreamCodeProtocolViolation; the connection stays up.
func TestStreamOverrunResetsStream(t *testing.T) {
	const window = 64 << 10
	nodes := mesh(t, 2, actors.Config{Dist: dist.Config{UserStreamWindow: window}})
	spawnNamed(t, nodes[1], replyProps(), "echo")
	held := make(chan *dist.Stream, 1)
	acceptorOf(t, nodes[1], "hold", func(s *dist.Stream) { held <- s })
	s, err := nodes[0].OpenStream(ctx10(t), nodes[1].Name(), "hold")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	remote := <-held
	defer remote.Close()

	// Within the window: written without blocking, nothing reset.
	s.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := s.Write(make([]byte, window)); err != nil {
		t.Fatalf("write of one window: %v", err)
	}
	// One more byte waits for credit the reader never grants.
	s.SetWriteDeadline(time.Now().Add(quietPeriod))
	if n, err := s.Write([]byte{1}); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the window: %d, %v; want 0 and a deadline error", n, err)
	}
	// A writer that ignores the credit is reset.
	dist.OverrunCredit(s, window)
	s.SetWriteDeadline(time.Now().Add(waitTimeout))
	var code transport.ErrorCode
	waitFor(t, waitTimeout, "the overrun stream to be reset", func() bool {
		_, err := s.Write(make([]byte, 4<<10))
		var se *transport.StreamError
		if errors.As(err, &se) {
			code = se.Code
			return true
		}
		if err != nil {
			t.Fatalf("write after the overrun: %v, want a stream reset", err)
		}
		return false
	})
	if code != dist.StreamCodeProtocolViolation {
		t.Fatalf("reset with code %v, want StreamCodeProtocolViolation", code)
	}
	remote.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, err := io.ReadAll(remote); !errors.Is(err, transport.ErrStreamReset) {
		t.Fatalf("acceptor's read of the overrun stream: %v, want ErrStreamReset", err)
	}
	request(t, nodes[0], actor.NewPID(nodes[1].Name(), "echo"), wrapperspb.String("still up"))
}

// Reads and writes honour deadlines while they wait on the peer, and a
// write waiting for credit goes on when the reader consumes.
func TestStreamCreditResumesWriter(t *testing.T) {
	const window = 16 << 10
	nodes := mesh(t, 2, actors.Config{Dist: dist.Config{UserStreamWindow: window}})
	held := make(chan *dist.Stream, 1)
	acceptorOf(t, nodes[1], "hold", func(s *dist.Stream) { held <- s })
	s, err := nodes[0].OpenStream(ctx10(t), nodes[1].Name(), "hold")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	remote := <-held
	defer remote.Close()
	remote.SetReadDeadline(time.Now().Add(quietPeriod))
	if _, err := remote.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read with nothing sent: %v, want a deadline error", err)
	}
	remote.SetReadDeadline(time.Time{})
	const total = 10 * window
	wrote := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, total))
		if err == nil {
			err = s.CloseWrite()
		}
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("a write of 10 windows finished with no reader: %v", err)
	case <-time.After(quietPeriod):
	}
	remote.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := io.Copy(io.Discard, remote)
	if err != nil || n != total {
		t.Fatalf("read %d bytes, %v; want %d", n, err, total)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// A peer that does not speak credit flow control gets no user streams,
// in either direction, and the opener is told why.
func TestStreamNeedsCreditCapability(t *testing.T) {
	start := func(name string, older bool, peers map[string]string) (*dist.Manager, *transport.Transport) {
		var before func(*dist.Manager)
		if older {
			before = dist.WithoutStreamCredit
		}
		m, system, tr := startBareManager(t, name, peers, before)
		pid := system.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			if o, ok := c.Message().(*dist.StreamOpened); ok {
				go echoStream(o.Stream)
			}
		}))
		if err := m.RegisterAcceptor("echo", pid); err != nil {
			t.Fatal(err)
		}
		return m, tr
	}
	modern, mtr := start("modern@localhost", false, nil)
	older, _ := start("older@localhost", true, map[string]string{"modern@localhost": mtr.Addr().String()})
	// The older node dials, so both know each other's address.
	if s, err := older.OpenStream(ctx10(t), "modern@localhost", "echo"); err == nil {
		s.Close()
		t.Fatal("a peer without the capability opened a user stream")
	}
	if _, err := modern.OpenStream(ctx10(t), "older@localhost", "echo"); !errors.Is(err, dist.ErrStreamsUnsupported) {
		t.Fatalf("open to a peer without the capability: %v, want ErrStreamsUnsupported", err)
	}
}
