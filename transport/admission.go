// Admission of inbound connections: the pending set and its eviction
// policy (docs/security.md, "Handshake floods").
//
// An inbound connection is pending from the end of its QUIC handshake
// until its owner calls Conn.Admitted (the dist layer does once it has
// read the peer's dist hello) or the connection ends. At most
// Config.MaxPendingHandshakes are pending. When the set is full, a new
// connection takes the place of one already in it:
//
//  1. a silent one (its peer has opened no stream yet) before one whose
//     peer is talking;
//  2. among those, one from the source with the most pending connections;
//  3. among those, the oldest.
//
// A silent connection is always evicted in favour of the newcomer: honest
// peers open their first stream within a round trip of the QUIC
// handshake, so an old silent connection is almost surely an attacker's.
// When every pending connection is talking, one is evicted only if its
// source has more pending connections than the newcomer's; otherwise the
// newcomer is refused. Either way the loser is closed with
// CodeTooManyHandshakes.
//
// Ownership: the set is guarded by Transport.mu; acceptLoop adds, the
// conn's watch goroutine and Conn.Admitted remove.

package transport

import (
	"net"
	"time"
)

// floodLogInterval spaces the warnings about evicted and refused
// connections: at most one per interval, with counts.
const floodLogInterval = time.Minute

// pendingConn is one entry of the pending set.
type pendingConn struct {
	source string
	seq    uint64 // arrival order
}

// admissions is the pending set. Not safe for concurrent use: the
// Transport's mu guards it.
type admissions struct {
	limit    int
	conns    map[*Conn]pendingConn
	bySource map[string]int
	seq      uint64

	// Flood statistics since the last warning.
	evicted, refused int
	lastWarn         time.Time
}

func newAdmissions(limit int) admissions {
	return admissions{limit: limit, conns: make(map[*Conn]pendingConn), bySource: make(map[string]int)}
}

// add admits c from source. When the set is full it picks a victim to
// evict (returned, already removed) or refuses c (ok false).
func (a *admissions) add(c *Conn, source string) (victim *Conn, ok bool) {
	if len(a.conns) >= a.limit {
		victim = a.victim(source)
		if victim == nil {
			a.refused++
			return nil, false
		}
		a.remove(victim)
		a.evicted++
	}
	a.seq++
	a.conns[c] = pendingConn{source: source, seq: a.seq}
	a.bySource[source]++
	return victim, true
}

// victim chooses the pending conn a newcomer from source replaces, or nil
// when the newcomer is refused.
func (a *admissions) victim(source string) *Conn {
	var best *Conn
	var bestEntry pendingConn
	bestSilent, bestCount := false, 0
	for c, e := range a.conns {
		silent := !c.peerOpenedStream.Load()
		count := a.bySource[e.source]
		better := best == nil ||
			(silent && !bestSilent) ||
			(silent == bestSilent && (count > bestCount || count == bestCount && e.seq < bestEntry.seq))
		if better {
			best, bestEntry, bestSilent, bestCount = c, e, silent, count
		}
	}
	if best == nil || (!bestSilent && bestCount <= a.bySource[source]) {
		return nil
	}
	return best
}

// remove forgets c; it does nothing if c is not pending.
func (a *admissions) remove(c *Conn) {
	e, ok := a.conns[c]
	if !ok {
		return
	}
	delete(a.conns, c)
	if a.bySource[e.source]--; a.bySource[e.source] <= 0 {
		delete(a.bySource, e.source)
	}
}

// warnDue reports whether a flood warning is due at now, and the counts
// since the last one (then reset).
func (a *admissions) warnDue(now time.Time) (evicted, refused int, due bool) {
	if a.evicted+a.refused == 0 || now.Sub(a.lastWarn) < floodLogInterval {
		return 0, 0, false
	}
	evicted, refused = a.evicted, a.refused
	a.evicted, a.refused, a.lastWarn = 0, 0, now
	return evicted, refused, true
}

// admit puts the new inbound conn c into the pending set: see the file
// comment. It returns the conn evicted to make room, if any, and false
// when c is refused; the caller closes both.
func (t *Transport) admit(c *Conn) (evicted *Conn, ok bool) {
	source := sourceOf(c.RemoteAddr())
	t.mu.Lock()
	if c.ctx.Err() != nil {
		// Already ended: its watch goroutine has run (or will find
		// nothing to remove); admitting it would leak the slot.
		t.mu.Unlock()
		return nil, true
	}
	evicted, ok = t.pending.add(c, source)
	pending := len(t.pending.conns)
	nEvicted, nRefused, warn := t.pending.warnDue(time.Now())
	t.mu.Unlock()
	switch {
	case evicted != nil:
		c.logger.Debug("transport: pending handshakes full, evicted one", "evicted", evicted.RemoteAddr().String())
	case !ok:
		c.logger.Debug("transport: pending handshakes full, refused", "pending", pending)
	}
	if warn {
		t.cfg.Logger.Warn("transport: pending handshakes full (handshake flood?)",
			"max", t.cfg.MaxPendingHandshakes, "evicted", nEvicted, "refused", nRefused, "within", floodLogInterval)
	}
	return evicted, ok
}

// admitted ends c's admission (Conn.Admitted).
func (t *Transport) admitted(c *Conn) {
	t.mu.Lock()
	t.pending.remove(c)
	t.mu.Unlock()
}

// sourceOf is the source a pending conn is counted against: its IPv4
// address, or its IPv6 /64 (one host commonly holds a whole /64), or the
// host part of another kind of address.
func sourceOf(addr net.Addr) string {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return hostOf(addr)
	}
	if ip4 := u.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return u.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
