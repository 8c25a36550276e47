package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// udpPair returns a FaultConn on a fresh UDP socket and a plain receiver.
func udpPair(t *testing.T) (*FaultConn, *net.UDPConn) {
	t.Helper()
	pc, err := UDPAdapter{}.Open()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := UDPAdapter{}.Open()
	if err != nil {
		t.Fatal(err)
	}
	fc := NewFaultConn(pc)
	t.Cleanup(func() {
		_ = fc.Close()
		_ = rc.Close()
	})
	return fc, rc.(*net.UDPConn)
}

func readPacket(t *testing.T, c net.PacketConn, within time.Duration) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	return buf[:n], err
}

func TestFaultConnDelayPreservesOrder(t *testing.T) {
	fc, rc := udpPair(t)
	const delay = 50 * time.Millisecond
	fc.SetDelay(delay)
	start := time.Now()
	for i := range 20 {
		if i == 10 {
			fc.SetDelay(0) // later packets must still queue behind earlier ones
		}
		if _, err := fc.WriteTo([]byte{byte(i)}, rc.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		p, err := readPacket(t, rc, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 && time.Since(start) < delay {
			t.Fatalf("first packet arrived after %v, before the delay", time.Since(start))
		}
		if p[0] != byte(i) {
			t.Fatalf("packet %d arrived as %d", p[0], i)
		}
	}
}

func TestFaultConnLossIsSeeded(t *testing.T) {
	count := func(seed uint64) []bool {
		fc, rc := udpPair(t)
		fc.SetSeed(seed)
		fc.SetLoss(0.5)
		for i := range 40 {
			if _, err := fc.WriteTo([]byte{byte(i)}, rc.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]bool, 40)
		for {
			p, err := readPacket(t, rc, 100*time.Millisecond)
			if err != nil {
				break
			}
			got[p[0]] = true
		}
		return got
	}
	first, second := count(7), count(7)
	n := 0
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("same seed, different drops at %d", i)
		}
		if first[i] {
			n++
		}
	}
	if n == 0 || n == 40 {
		t.Fatalf("loss 0.5 delivered %d of 40", n)
	}
	fc, _ := udpPair(t)
	fc.SetLoss(7)
	if got := fc.Faults().Loss; got != 1 {
		t.Fatalf("loss clamped to %v", got)
	}
}

func TestFaultConnBlackholeBothWays(t *testing.T) {
	fc, rc := udpPair(t)
	fc.SetBlackhole(true)
	if _, err := fc.WriteTo([]byte("out"), rc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := readPacket(t, rc, 100*time.Millisecond); err == nil {
		t.Fatal("blackholed packet went out")
	}
	if _, err := rc.WriteTo([]byte("in"), fc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := readPacket(t, fc, 100*time.Millisecond); err == nil {
		t.Fatal("blackholed packet came in")
	}
	fc.SetBlackhole(false)
	if _, err := rc.WriteTo([]byte("in2"), fc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	p, err := readPacket(t, fc, time.Second)
	if err != nil || !bytes.Equal(p, []byte("in2")) {
		t.Fatalf("after blackhole: %q %v", p, err)
	}
}

func TestFaultConnCloseStopsPumpAndRead(t *testing.T) {
	fc, rc := udpPair(t)
	fc.SetDelay(time.Hour)
	if _, err := fc.WriteTo([]byte("held"), rc.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, _, err := fc.ReadFrom(make([]byte, 16))
		readErr <- err
	}()
	if err := fc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fc.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadFrom did not return after Close")
	}
	if _, err := fc.WriteTo([]byte("x"), rc.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	// goleak in TestMain proves the pump goroutine is gone.
}

func TestFaultAdapterSharesSettings(t *testing.T) {
	fa := NewFaultAdapter(nil)
	c1, err := fa.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := fa.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fa.SetDelay(time.Second)
	for _, c := range []net.PacketConn{c1, c2} {
		if got := c.(*FaultConn).Faults().Delay; got != time.Second {
			t.Fatalf("conn sees delay %v", got)
		}
	}
	c1.(*FaultConn).SetBlackhole(true)
	if !fa.Faults().Blackhole {
		t.Fatal("setting on one conn not shared with the adapter")
	}
}

func TestRelayForwardsQUIC(t *testing.T) {
	b := startTransport(t, Config{})
	relay, err := NewRelay("127.0.0.1:0", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := relay.Close(); err != nil {
			t.Error(err)
		}
		_ = relay.Close()
	}()
	a := startTransport(t, Config{})
	ctx := testContext(t, 5*time.Second)
	accepted := make(chan *Conn, 1)
	go func() {
		c, err := b.Accept(ctx)
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	dialed, err := a.Dial(ctx, relay.Addr())
	if err != nil {
		t.Fatal(err)
	}
	acc := <-accepted
	if acc == nil {
		t.Fatal("no conn accepted")
	}
	if acc.RemoteAddr().String() == dialed.LocalAddr().String() {
		t.Fatal("acceptor sees the dialer directly, not the relay")
	}
	wait := echoStreams(t, acc)
	s, err := dialed.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("relay"), 10000)
	go func() {
		_, _ = s.Write(msg)
		_ = s.Close()
	}()
	got, err := io.ReadAll(s)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo through relay: %d bytes, %v", len(got), err)
	}
	_ = dialed.CloseWithError(CodeNone, "")
	wait()
}
