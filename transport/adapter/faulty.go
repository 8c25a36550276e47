package adapter

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// DefaultSeed seeds a Rule's loss decisions until SetSeed is called, so a
// test run replays the same drops.
const DefaultSeed = 1

// maxDelayedPackets bounds the packets one socket holds back for a delay;
// beyond it packets are dropped, like a full router queue.
const maxDelayedPackets = 1 << 14

// Faults are fault settings.
type Faults struct {
	// Delay is added to every outgoing packet; order is preserved per
	// destination.
	Delay time.Duration
	// Loss is the probability (0..1) of dropping an outgoing packet.
	Loss float64
	// Blackhole drops every packet in and out.
	Blackhole bool
}

// Rule is one changeable set of Faults with its own seeded loss
// decisions. It is safe for concurrent use; a change applies to the next
// packet. A nil *Rule injects nothing.
type Rule struct {
	mu     sync.Mutex
	faults Faults     // guarded by mu
	rng    *rand.Rand // guarded by mu
}

// NewRule returns a rule with no faults, seeded with DefaultSeed.
func NewRule() *Rule {
	return &Rule{rng: rand.New(rand.NewPCG(DefaultSeed, DefaultSeed))}
}

// SetDelay sets the one-way delay added to outgoing packets; a negative
// delay means none.
func (r *Rule) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.faults.Delay = max(d, 0)
	r.mu.Unlock()
}

// SetLoss sets the outgoing drop probability, clamped to 0..1 (NaN
// means 0).
func (r *Rule) SetLoss(rate float64) {
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	rate = min(rate, 1)
	r.mu.Lock()
	r.faults.Loss = rate
	r.mu.Unlock()
}

// SetBlackhole drops every packet in and out while on.
func (r *Rule) SetBlackhole(on bool) {
	r.mu.Lock()
	r.faults.Blackhole = on
	r.mu.Unlock()
}

// SetSeed reseeds the loss decisions.
func (r *Rule) SetSeed(seed uint64) {
	r.mu.Lock()
	r.rng = rand.New(rand.NewPCG(seed, seed))
	r.mu.Unlock()
}

// Faults returns the current settings.
func (r *Rule) Faults() Faults {
	if r == nil {
		return Faults{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults
}

// outgoing decides the fate of one outgoing packet.
func (r *Rule) outgoing() (drop bool, delay time.Duration) {
	if r == nil {
		return false, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults.Blackhole {
		return true, 0
	}
	if r.faults.Loss > 0 && r.rng.Float64() < r.faults.Loss {
		return true, 0
	}
	return false, r.faults.Delay
}

func (r *Rule) blackholed() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults.Blackhole
}

// Faulty wraps another adapter and injects faults into every socket it
// opens: those of its own rule on all packets, and those of a
// destination's rule on the packets to and from that address. Every
// socket it opened shares its rules, which may be changed at any time from
// any goroutine.
type Faulty struct {
	inner Opener
	all   *Rule

	mu    sync.RWMutex
	dests map[string]*Rule // by address; guarded by mu
}

// NewFaulty wraps inner (nil means a plain UDP socket on
// DefaultListenAddr) with no faults set.
func NewFaulty(inner Opener) *Faulty {
	if inner == nil {
		inner = udpOpener{}
	}
	return &Faulty{inner: inner, all: NewRule(), dests: make(map[string]*Rule)}
}

// Open opens a socket from the inner adapter and wraps it so it obeys
// this Faulty's rules.
func (f *Faulty) Open() (net.PacketConn, error) {
	pc, err := f.inner.Open()
	if err != nil {
		return nil, err
	}
	return &faultyConn{
		inner:  pc,
		rules:  f,
		dests:  make(map[string]*destQueue),
		wake:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}, nil
}

// SetDelay sets the one-way delay added to every outgoing packet.
func (f *Faulty) SetDelay(d time.Duration) { f.all.SetDelay(d) }

// SetLoss sets the drop probability of every outgoing packet, clamped to
// 0..1.
func (f *Faulty) SetLoss(rate float64) { f.all.SetLoss(rate) }

// SetBlackhole drops every packet in and out while on.
func (f *Faulty) SetBlackhole(on bool) { f.all.SetBlackhole(on) }

// SetSeed reseeds the whole-socket loss decisions.
func (f *Faulty) SetSeed(seed uint64) { f.all.SetSeed(seed) }

// Faults returns the whole-socket settings.
func (f *Faulty) Faults() Faults { return f.all.Faults() }

// Dest returns the rule for packets to and from addr, installing a new
// one (no faults, DefaultSeed) if there is none.
func (f *Faulty) Dest(addr net.Addr) *Rule {
	key := addr.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.dests[key]
	if !ok {
		r = NewRule()
		f.dests[key] = r
	}
	return r
}

// SetDest installs r as the rule for packets to and from addr, replacing
// any; nil removes it. One rule may be installed on several Faulty
// adapters.
func (f *Faulty) SetDest(addr net.Addr, r *Rule) {
	key := addr.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	if r == nil {
		delete(f.dests, key)
		return
	}
	f.dests[key] = r
}

// dest returns the rule for the address with this key, or nil.
func (f *Faulty) dest(key string) *Rule {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.dests[key]
}

// outgoing decides the fate of one packet to the address with this key.
func (f *Faulty) outgoing(key string) (drop bool, delay time.Duration) {
	drop, delay = f.all.outgoing()
	if drop {
		return true, 0
	}
	drop, destDelay := f.dest(key).outgoing()
	if drop {
		return true, 0
	}
	return false, delay + destDelay
}

// blackholed reports whether packets to and from the address with this
// key are dropped.
func (f *Faulty) blackholed(key string) bool {
	return f.all.blackholed() || f.dest(key).blackholed()
}

// faultyConn is a socket opened by Faulty. Outgoing packets may be
// dropped (Loss, Blackhole) or held back (Delay) by one goroutine, the
// pump, started on the first delayed packet and stopped by Close.
// Incoming packets are dropped while their source is blackholed.
type faultyConn struct {
	inner net.PacketConn
	rules *Faulty

	mu      sync.Mutex
	queue   delayQueue            // guarded by mu
	dests   map[string]*destQueue // destinations with pending packets; guarded by mu
	pending int                   // queued or being written by the pump; guarded by mu
	seq     uint64                // next packet's sequence number; guarded by mu
	running bool                  // pump started; guarded by mu
	isDone  bool                  // Close called; guarded by mu
	wake    chan struct{}         // 1-buffered: a packet was queued
	closed  chan struct{}
	once    sync.Once
	pumpWG  sync.WaitGroup
}

// destQueue tracks one destination's held-back packets, so later ones
// never overtake earlier ones.
type destQueue struct {
	last time.Time // due time of the newest packet
	n    int       // queued or being written
}

type delayedPacket struct {
	data []byte
	addr net.Addr
	key  string
	due  time.Time
	seq  uint64
}

// delayQueue is a min-heap of packets by due time, then sequence.
type delayQueue []delayedPacket

func (q delayQueue) Len() int { return len(q) }
func (q delayQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q delayQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)   { *q = append(*q, x.(delayedPacket)) }
func (q *delayQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	old[len(old)-1] = delayedPacket{}
	*q = old[:len(old)-1]
	return p
}

var _ net.PacketConn = (*faultyConn)(nil)

// ReadFrom reads the next packet whose source is not blackholed. It
// returns once the conn is closed.
func (c *faultyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.inner.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if c.rules.blackholed(addr.String()) {
			continue
		}
		return n, addr, nil
	}
}

// WriteTo sends p to addr, subject to the rules. A dropped packet still
// reports success, as a lossy network would.
func (c *faultyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	key := addr.String()
	drop, delay := c.rules.outgoing(key)
	if drop {
		return len(p), nil
	}
	c.mu.Lock()
	if c.isDone {
		c.mu.Unlock()
		return 0, net.ErrClosed
	}
	dq := c.dests[key]
	if delay == 0 && dq == nil {
		c.mu.Unlock()
		return c.inner.WriteTo(p, addr)
	}
	if c.pending >= maxDelayedPackets {
		c.mu.Unlock()
		return len(p), nil
	}
	due := time.Now().Add(delay)
	if dq == nil {
		dq = &destQueue{}
		c.dests[key] = dq
	} else if dq.last.After(due) {
		due = dq.last
	}
	dq.last = due
	dq.n++
	heap.Push(&c.queue, delayedPacket{data: append([]byte(nil), p...), addr: addr, key: key, due: due, seq: c.seq})
	c.seq++
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

// pump writes held-back packets once they are due, earliest first.
func (c *faultyConn) pump() {
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
		if wait := time.Until(c.queue[0].due); wait > 0 {
			c.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.wake: // an earlier packet may have been queued
			case <-c.closed:
				return
			}
			continue
		}
		head := heap.Pop(&c.queue).(delayedPacket)
		c.mu.Unlock()
		if !c.rules.blackholed(head.key) {
			_, _ = c.inner.WriteTo(head.data, head.addr)
		}
		c.mu.Lock()
		c.pending--
		if dq := c.dests[head.key]; dq != nil {
			if dq.n--; dq.n == 0 {
				delete(c.dests, head.key)
			}
		}
		c.mu.Unlock()
	}
}

// Close closes the wrapped conn and stops the pump. Packets still held
// back are dropped. Calling it again returns nil.
func (c *faultyConn) Close() error {
	var err error
	c.once.Do(func() {
		c.mu.Lock()
		c.isDone = true
		c.queue = nil
		c.dests = make(map[string]*destQueue)
		c.mu.Unlock()
		close(c.closed)
		err = c.inner.Close()
		c.pumpWG.Wait()
	})
	return err
}

// LocalAddr returns the wrapped conn's local address.
func (c *faultyConn) LocalAddr() net.Addr { return c.inner.LocalAddr() }

// SetDeadline sets the wrapped conn's deadlines.
func (c *faultyConn) SetDeadline(t time.Time) error { return c.inner.SetDeadline(t) }

// SetReadDeadline sets the wrapped conn's read deadline.
func (c *faultyConn) SetReadDeadline(t time.Time) error { return c.inner.SetReadDeadline(t) }

// SetWriteDeadline sets the wrapped conn's write deadline.
func (c *faultyConn) SetWriteDeadline(t time.Time) error { return c.inner.SetWriteDeadline(t) }

// SetReadBuffer sets the wrapped conn's receive buffer, when it has one
// (quic-go asks for a large buffer).
func (c *faultyConn) SetReadBuffer(bytes int) error {
	if b, ok := c.inner.(interface{ SetReadBuffer(int) error }); ok {
		return b.SetReadBuffer(bytes)
	}
	return nil
}

// SetWriteBuffer sets the wrapped conn's send buffer, when it has one.
func (c *faultyConn) SetWriteBuffer(bytes int) error {
	if b, ok := c.inner.(interface{ SetWriteBuffer(int) error }); ok {
		return b.SetWriteBuffer(bytes)
	}
	return nil
}
