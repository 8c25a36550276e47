package transport

import (
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// DefaultFaultSeed seeds the loss decisions of a FaultAdapter or FaultConn
// until SetSeed is called, so a test run replays the same drops.
const DefaultFaultSeed = 1

// maxDelayedPackets bounds the packets a FaultConn holds back for SetDelay;
// beyond it packets are dropped, like a full router queue.
const maxDelayedPackets = 1 << 14

// Faults are the fault settings of a FaultAdapter or FaultConn.
type Faults struct {
	// Delay is added to every outgoing packet; order is preserved.
	Delay time.Duration
	// Loss is the probability (0..1) of dropping an outgoing packet.
	Loss float64
	// Blackhole drops every packet in and out.
	Blackhole bool
}

// faultSettings are shared by every FaultConn an adapter opened.
type faultSettings struct {
	mu     sync.Mutex
	faults Faults
	rng    *rand.Rand
}

func newFaultSettings() *faultSettings {
	return &faultSettings{rng: rand.New(rand.NewPCG(DefaultFaultSeed, DefaultFaultSeed))}
}

func (s *faultSettings) get() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

func (s *faultSettings) setDelay(d time.Duration) {
	s.mu.Lock()
	s.faults.Delay = max(d, 0)
	s.mu.Unlock()
}

func (s *faultSettings) setLoss(rate float64) {
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	rate = min(rate, 1)
	s.mu.Lock()
	s.faults.Loss = rate
	s.mu.Unlock()
}

func (s *faultSettings) setBlackhole(on bool) {
	s.mu.Lock()
	s.faults.Blackhole = on
	s.mu.Unlock()
}

func (s *faultSettings) setSeed(seed uint64) {
	s.mu.Lock()
	s.rng = rand.New(rand.NewPCG(seed, seed))
	s.mu.Unlock()
}

// outgoing decides the fate of one outgoing packet.
func (s *faultSettings) outgoing() (drop bool, delay time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.Blackhole {
		return true, 0
	}
	if s.faults.Loss > 0 && s.rng.Float64() < s.faults.Loss {
		return true, 0
	}
	return false, s.faults.Delay
}

func (s *faultSettings) blackholed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.Blackhole
}

// FaultAdapter wraps another adapter and injects faults. Every conn it opens
// shares its fault settings, which may be changed at any time from any
// goroutine.
type FaultAdapter struct {
	inner    SocketAdapter
	settings *faultSettings
}

var _ SocketAdapter = (*FaultAdapter)(nil)

// NewFaultAdapter wraps inner (nil means UDPAdapter{}) with no faults set.
func NewFaultAdapter(inner SocketAdapter) *FaultAdapter {
	if inner == nil {
		inner = UDPAdapter{}
	}
	return &FaultAdapter{inner: inner, settings: newFaultSettings()}
}

// Open opens a conn from the inner adapter and wraps it in a FaultConn
// sharing this adapter's settings.
func (f *FaultAdapter) Open() (net.PacketConn, error) {
	pc, err := f.inner.Open()
	if err != nil {
		return nil, err
	}
	return newFaultConn(pc, f.settings), nil
}

// SetDelay sets the one-way delay added to outgoing packets.
func (f *FaultAdapter) SetDelay(d time.Duration) { f.settings.setDelay(d) }

// SetLoss sets the outgoing drop probability, clamped to 0..1.
func (f *FaultAdapter) SetLoss(rate float64) { f.settings.setLoss(rate) }

// SetBlackhole drops every packet in and out while on.
func (f *FaultAdapter) SetBlackhole(on bool) { f.settings.setBlackhole(on) }

// SetSeed reseeds the loss decisions.
func (f *FaultAdapter) SetSeed(seed uint64) { f.settings.setSeed(seed) }

// Faults returns the current settings.
func (f *FaultAdapter) Faults() Faults { return f.settings.get() }

// FaultConn wraps a net.PacketConn and injects faults on it. Outgoing
// packets may be dropped (Loss, Blackhole) or held back (Delay, order
// preserved, by one goroutine started on the first delayed packet and
// stopped by Close). Incoming packets are dropped while Blackhole is on.
type FaultConn struct {
	inner    net.PacketConn
	settings *faultSettings

	mu      sync.Mutex
	queue   []delayedPacket // guarded by mu
	pending int             // queued or being written by the pump; guarded by mu
	running bool            // pump started; guarded by mu
	isDone  bool            // Close called; guarded by mu
	wake    chan struct{}   // 1-buffered: the queue became non-empty
	closed  chan struct{}
	once    sync.Once
	pumpWG  sync.WaitGroup
}

type delayedPacket struct {
	data []byte
	addr net.Addr
	due  time.Time
}

var _ net.PacketConn = (*FaultConn)(nil)

// NewFaultConn wraps pc with its own fault settings (none set).
func NewFaultConn(pc net.PacketConn) *FaultConn {
	return newFaultConn(pc, newFaultSettings())
}

func newFaultConn(pc net.PacketConn, s *faultSettings) *FaultConn {
	return &FaultConn{
		inner:    pc,
		settings: s,
		wake:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
}

// SetDelay sets the one-way delay added to outgoing packets.
func (c *FaultConn) SetDelay(d time.Duration) { c.settings.setDelay(d) }

// SetLoss sets the outgoing drop probability, clamped to 0..1.
func (c *FaultConn) SetLoss(rate float64) { c.settings.setLoss(rate) }

// SetBlackhole drops every packet in and out while on.
func (c *FaultConn) SetBlackhole(on bool) { c.settings.setBlackhole(on) }

// SetSeed reseeds the loss decisions.
func (c *FaultConn) SetSeed(seed uint64) { c.settings.setSeed(seed) }

// Faults returns the current settings.
func (c *FaultConn) Faults() Faults { return c.settings.get() }

// ReadFrom reads the next packet not dropped by Blackhole. It returns once
// the conn is closed.
func (c *FaultConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.inner.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.settings.blackholed() {
			continue
		}
		return n, addr, nil
	}
}

// WriteTo sends p to addr, subject to the fault settings. A dropped packet
// still reports success, as a lossy network would.
func (c *FaultConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	drop, delay := c.settings.outgoing()
	if drop {
		return len(p), nil
	}
	c.mu.Lock()
	if c.isDone {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	if delay == 0 && c.pending == 0 {
		c.mu.Unlock()
		return c.inner.WriteTo(p, addr)
	}
	if c.pending >= maxDelayedPackets {
		c.mu.Unlock()
		return len(p), nil
	}
	c.queue = append(c.queue, delayedPacket{data: append([]byte(nil), p...), addr: addr, due: time.Now().Add(delay)})
	c.pending++
	if !c.running {
		c.running = true
		c.pumpWG.Add(1)
		go c.pump()
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// pump writes delayed packets in FIFO order once they are due.
func (c *FaultConn) pump() {
	defer c.pumpWG.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.mu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.closed:
				return
			}
		}
		head := c.queue[0]
		if wait := time.Until(head.due); wait > 0 {
			c.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.closed:
				return
			}
			continue
		}
		c.queue[0] = delayedPacket{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
		if !c.settings.blackholed() {
			_, _ = c.inner.WriteTo(head.data, head.addr)
		}
		c.mu.Lock()
		c.pending--
		c.mu.Unlock()
	}
}

// Close closes the wrapped conn and stops the delay goroutine. Packets still
// held back are dropped. Calling it again returns nil.
func (c *FaultConn) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.isDone = true
		c.queue = nil
		c.mu.Unlock()
		close(c.closed)
		err = c.inner.Close()
		c.pumpWG.Wait()
	})
	return err
}

// LocalAddr returns the wrapped conn's local address.
func (c *FaultConn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// SetDeadline sets the wrapped conn's deadlines.
func (c *FaultConn) SetDeadline(t time.Time) error { return c.inner.SetDeadline(t) }

// SetReadDeadline sets the wrapped conn's read deadline.
func (c *FaultConn) SetReadDeadline(t time.Time) error { return c.inner.SetReadDeadline(t) }

// SetWriteDeadline sets the wrapped conn's write deadline.
func (c *FaultConn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }

// SetReadBuffer sets the wrapped conn's receive buffer, when it has one
// (quic-go asks for a large buffer).
func (c *FaultConn) SetReadBuffer(bytes int) error {
	if b, ok := c.inner.(interface{ SetReadBuffer(int) error }); ok {
		return b.SetReadBuffer(bytes)
	}
	return nil
}

// SetWriteBuffer sets the wrapped conn's send buffer, when it has one.
func (c *FaultConn) SetWriteBuffer(bytes int) error {
	if b, ok := c.inner.(interface{ SetWriteBuffer(int) error }); ok {
		return b.SetWriteBuffer(bytes)
	}
	return nil
}
