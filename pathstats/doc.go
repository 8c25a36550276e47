// Package pathstats gives a per-peer view of the QUIC path under a Cask
// session: smoothed, latest and minimum RTT, RTT variation, congestion
// window, byte and packet counters, a Congested flag, the addresses of
// the active path and the number of migrations (Summary).
//
// The dist layer answers dist.GetPathStats with transport.PathStats;
// FromTransport converts it. actors.Node.PathStats returns a Summary
// directly, and SRTT is a one-line helper over any Source (a Node, or a
// test double). A migration watchdog samples these on a timer and sends
// dist.MigratePeer when a path looks bad; see docs/path-stats.md.
//
// Everything here is plain data and pure functions: no goroutine, no
// clock, no I/O. Reading a Summary costs one request to the dist manager
// actor, answered at once from the connection's counters.
package pathstats
