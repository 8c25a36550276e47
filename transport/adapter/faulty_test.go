package adapter

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// openFaulty opens a socket from f, closed when the test ends.
func openFaulty(t *testing.T, f *Faulty) net.PacketConn {
	t.Helper()
	pc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// receiver opens a plain UDP socket, closed when the test ends.
func receiver(t *testing.T) *net.UDPConn {
	t.Helper()
	rc, err := listenUDP("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func readPacket(t *testing.T, c net.PacketConn, within time.Duration) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 2048)
	n, _, err := c.ReadFrom(buf)
	return buf[:n], err
}

func send(t *testing.T, c net.PacketConn, p []byte, to net.Addr) {
	t.Helper()
	if _, err := c.WriteTo(p, to); err != nil {
		t.Fatal(err)
	}
}

// expectInOrder reads n one-byte packets 0..n-1 from rc.
func expectInOrder(t *testing.T, rc net.PacketConn, n int) {
	t.Helper()
	for i := range n {
		p, err := readPacket(t, rc, 2*time.Second)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p[0] != byte(i) {
			t.Fatalf("packet %d arrived as number %d", p[0], i)
		}
	}
}

func TestFaultyDelayPreservesOrder(t *testing.T) {
	f := NewFaulty(nil)
	fc, rc := openFaulty(t, f), receiver(t)
	const delay = 50 * time.Millisecond
	f.SetDelay(delay)
	start := time.Now()
	for i := range 20 {
		if i == 10 {
			f.SetDelay(0) // later packets must still queue behind earlier ones
		}
		send(t, fc, []byte{byte(i)}, rc.LocalAddr())
	}
	p, err := readPacket(t, rc, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if since := time.Since(start); since < delay {
		t.Fatalf("first packet arrived after %v, before the delay", since)
	}
	if p[0] != 0 {
		t.Fatalf("first packet is number %d", p[0])
	}
	for i := 1; i < 20; i++ {
		p, err := readPacket(t, rc, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if p[0] != byte(i) {
			t.Fatalf("packet %d arrived as number %d", p[0], i)
		}
	}
}

func TestFaultyDestDelayKeepsOrderAndHoldsBackNoOtherDest(t *testing.T) {
	f := NewFaulty(nil)
	fc := openFaulty(t, f)
	slow, stuck, clean := receiver(t), receiver(t), receiver(t)
	f.Dest(stuck.LocalAddr()).SetDelay(time.Hour)
	f.Dest(slow.LocalAddr()).SetDelay(50 * time.Millisecond)
	for i := range 20 {
		if i == 10 {
			f.Dest(slow.LocalAddr()).SetDelay(0)
		}
		send(t, fc, []byte{byte(i)}, stuck.LocalAddr())
		send(t, fc, []byte{byte(i)}, slow.LocalAddr())
		send(t, fc, []byte{byte(i)}, clean.LocalAddr())
	}
	expectInOrder(t, clean, 20)
	expectInOrder(t, slow, 20)
	if p, err := readPacket(t, stuck, 50*time.Millisecond); err == nil {
		t.Fatalf("packet %d escaped an hour's delay", p[0])
	}
	if f.Faults() != (Faults{}) {
		t.Fatalf("a destination's rule changed the whole socket's: %+v", f.Faults())
	}
}

func TestFaultyWholeSocketAndDestFaultsAdd(t *testing.T) {
	f := NewFaulty(nil)
	dest := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	f.SetDelay(10 * time.Millisecond)
	f.Dest(dest).SetDelay(20 * time.Millisecond)
	if drop, d := f.outgoing(dest.String()); drop || d != 30*time.Millisecond {
		t.Fatalf("to the destination: drop %v, delay %v; want 30ms", drop, d)
	}
	if drop, d := f.outgoing("127.0.0.1:10"); drop || d != 10*time.Millisecond {
		t.Fatalf("elsewhere: drop %v, delay %v; want 10ms", drop, d)
	}
	f.SetLoss(1)
	if drop, _ := f.outgoing(dest.String()); !drop {
		t.Fatal("whole-socket loss 1 spared a destination with its own rule")
	}
	f.SetLoss(0)
	f.Dest(dest).SetBlackhole(true)
	if !f.blackholed(dest.String()) || f.blackholed("127.0.0.1:10") {
		t.Fatal("a destination's blackhole is not confined to it")
	}
	f.SetDest(dest, nil)
	if drop, d := f.outgoing(dest.String()); drop || d != 10*time.Millisecond {
		t.Fatalf("after removing the rule: drop %v, delay %v", drop, d)
	}
}

func TestFaultyLossIsSeeded(t *testing.T) {
	// delivered sends 40 packets with loss 0.5 set by set, and reports
	// which arrived.
	delivered := func(set func(f *Faulty, to net.Addr)) []bool {
		f := NewFaulty(nil)
		fc, rc := openFaulty(t, f), receiver(t)
		set(f, rc.LocalAddr())
		for i := range 40 {
			send(t, fc, []byte{byte(i)}, rc.LocalAddr())
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
	whole := func(seed uint64) func(*Faulty, net.Addr) {
		return func(f *Faulty, _ net.Addr) { f.SetSeed(seed); f.SetLoss(0.5) }
	}
	dest := func(seed uint64) func(*Faulty, net.Addr) {
		return func(f *Faulty, to net.Addr) { r := f.Dest(to); r.SetSeed(seed); r.SetLoss(0.5) }
	}
	for name, set := range map[string]func(uint64) func(*Faulty, net.Addr){"whole socket": whole, "destination": dest} {
		first, second, other := delivered(set(7)), delivered(set(7)), delivered(set(8))
		n, differ := 0, false
		for i := range first {
			if first[i] != second[i] {
				t.Fatalf("%s: same seed, different drops at %d", name, i)
			}
			if first[i] {
				n++
			}
			differ = differ || first[i] != other[i]
		}
		if n == 0 || n == 40 {
			t.Fatalf("%s: loss 0.5 delivered %d of 40", name, n)
		}
		if !differ {
			t.Fatalf("%s: seeds 7 and 8 dropped the same packets", name)
		}
	}
	f := NewFaulty(nil)
	f.SetLoss(7)
	if got := f.Faults().Loss; got != 1 {
		t.Fatalf("loss 7 clamped to %v", got)
	}
	r := NewRule()
	r.SetLoss(-1)
	r.SetDelay(-time.Second)
	if got := r.Faults(); got != (Faults{}) {
		t.Fatalf("negative settings kept as %+v", got)
	}
}

func TestFaultyBlackholeBothWays(t *testing.T) {
	for _, whole := range []bool{true, false} {
		f := NewFaulty(nil)
		fc, rc, bystander := openFaulty(t, f), receiver(t), receiver(t)
		set := f.SetBlackhole
		if !whole {
			set = f.Dest(rc.LocalAddr()).SetBlackhole
		}
		set(true)
		send(t, fc, []byte("out"), rc.LocalAddr())
		if _, err := readPacket(t, rc, 100*time.Millisecond); err == nil {
			t.Fatalf("whole socket %v: blackholed packet went out", whole)
		}
		send(t, rc, []byte("in"), fc.LocalAddr())
		if _, err := readPacket(t, fc, 100*time.Millisecond); err == nil {
			t.Fatalf("whole socket %v: blackholed packet came in", whole)
		}
		if !whole {
			send(t, fc, []byte("by"), bystander.LocalAddr())
			if p, err := readPacket(t, bystander, time.Second); err != nil || string(p) != "by" {
				t.Fatalf("a destination's blackhole stopped a packet to another: %q %v", p, err)
			}
		}
		set(false)
		send(t, rc, []byte("in2"), fc.LocalAddr())
		p, err := readPacket(t, fc, time.Second)
		if err != nil || !bytes.Equal(p, []byte("in2")) {
			t.Fatalf("whole socket %v: after blackhole: %q %v", whole, p, err)
		}
		send(t, fc, []byte("out2"), rc.LocalAddr())
		if p, err := readPacket(t, rc, time.Second); err != nil || string(p) != "out2" {
			t.Fatalf("whole socket %v: after blackhole, out: %q %v", whole, p, err)
		}
	}
}

func TestFaultyDropsHeldBackPacketsWhenBlackholed(t *testing.T) {
	f := NewFaulty(nil)
	fc, rc := openFaulty(t, f), receiver(t)
	r := f.Dest(rc.LocalAddr())
	r.SetDelay(300 * time.Millisecond)
	send(t, fc, []byte("held"), rc.LocalAddr())
	r.SetBlackhole(true)
	if p, err := readPacket(t, rc, time.Second); err == nil {
		t.Fatalf("%q went out after its destination was blackholed", p)
	}
}

func TestFaultyBoundsHeldBackPackets(t *testing.T) {
	f := NewFaulty(nil)
	fc, rc := openFaulty(t, f), receiver(t)
	f.SetDelay(time.Hour)
	for range maxDelayedPackets + 10 {
		send(t, fc, []byte("x"), rc.LocalAddr())
	}
	c := fc.(*faultyConn)
	c.mu.Lock()
	pending, queued := c.pending, len(c.queue)
	c.mu.Unlock()
	if pending != maxDelayedPackets || queued != maxDelayedPackets {
		t.Fatalf("holding %d (queue %d), want the bound %d", pending, queued, maxDelayedPackets)
	}
}

func TestFaultyCloseStopsPumpAndRead(t *testing.T) {
	f := NewFaulty(nil)
	rc := receiver(t)
	fc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	f.SetDelay(time.Hour)
	send(t, fc, []byte("held"), rc.LocalAddr())
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

func TestFaultySharesRules(t *testing.T) {
	a, b := NewFaulty(nil), NewFaulty(nil)
	a1, a2, bc := openFaulty(t, a), openFaulty(t, a), openFaulty(t, b)
	rc := receiver(t)

	// One Rule on two adapters, as testkit installs a link's rule on both
	// of its nodes' sockets.
	link := NewRule()
	a.SetDest(rc.LocalAddr(), link)
	b.SetDest(rc.LocalAddr(), link)
	if a.Dest(rc.LocalAddr()) != link {
		t.Fatal("Dest does not return the installed rule")
	}
	link.SetBlackhole(true)
	for _, c := range []net.PacketConn{a1, a2, bc} {
		send(t, c, []byte("x"), rc.LocalAddr())
	}
	if _, err := readPacket(t, rc, 100*time.Millisecond); err == nil {
		t.Fatal("a socket ignored the shared rule")
	}

	// The whole-socket rule is shared by every socket of one adapter and
	// by no other.
	link.SetBlackhole(false)
	a.SetBlackhole(true)
	send(t, a2, []byte("a"), rc.LocalAddr())
	send(t, bc, []byte("b"), rc.LocalAddr())
	if p, err := readPacket(t, rc, time.Second); err != nil || string(p) != "b" {
		t.Fatalf("got %q %v, want only b's packet", p, err)
	}
	if p, err := readPacket(t, rc, 100*time.Millisecond); err == nil {
		t.Fatalf("%q escaped the whole-socket blackhole", p)
	}
}
