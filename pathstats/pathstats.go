package pathstats

import (
	"fmt"
	"net"
	"time"

	"github.com/cask-p2p/cask/transport"
)

// Thresholds of the Congested flag.
const (
	// CongestedRTTFactor: a path is congested when its smoothed RTT is at
	// least this many times its minimum RTT ...
	CongestedRTTFactor = 2
	// CongestedMinQueueing: ... and at least this much above it, so
	// microsecond jitter on loopback does not count.
	CongestedMinQueueing = 10 * time.Millisecond
)

// Summary is a snapshot of the active path of the connection to one peer.
// RTT and congestion figures describe the active path: after a migration
// they start again on the new path. Counters cover the connection's life.
type Summary struct {
	// SRTT is the smoothed RTT (RFC 9002 §5.3).
	SRTT time.Duration
	// LatestRTT is the last RTT sample.
	LatestRTT time.Duration
	// MinRTT is the smallest RTT seen on the path.
	MinRTT time.Duration
	// RTTVariation is the mean deviation of the RTT samples.
	RTTVariation time.Duration
	// CongestionWindow is this side's congestion window, in bytes.
	CongestionWindow uint64

	BytesSent, PacketsSent         uint64
	BytesReceived, PacketsReceived uint64
	// BytesLost and PacketsLost count what was declared lost (they can go
	// down again when a packet declared lost arrives after all).
	BytesLost, PacketsLost uint64

	// Congested says the path is queueing: SRTT is at least
	// CongestedRTTFactor × MinRTT and at least CongestedMinQueueing above
	// it. It is a hint for a watchdog, not a verdict: a path whose
	// latency simply grew (a longer route) looks the same. False until
	// there is an RTT sample.
	Congested bool

	// LocalAddr and RemoteAddr are the active path's addresses. On the
	// dialing side LocalAddr changes with each migration; on the
	// accepting side RemoteAddr follows the peer's migrations.
	LocalAddr, RemoteAddr net.Addr
	// Migrations counts successful migrations of this connection made by
	// this node (the accepting side counts none).
	Migrations int
}

// FromTransport converts the transport's path statistics.
func FromTransport(s transport.PathStats) Summary {
	return Summary{
		SRTT:             s.SmoothedRTT,
		LatestRTT:        s.LatestRTT,
		MinRTT:           s.MinRTT,
		RTTVariation:     s.RTTVariation,
		CongestionWindow: s.CongestionWindow,
		BytesSent:        s.BytesSent,
		PacketsSent:      s.PacketsSent,
		BytesReceived:    s.BytesReceived,
		PacketsReceived:  s.PacketsReceived,
		BytesLost:        s.BytesLost,
		PacketsLost:      s.PacketsLost,
		Congested:        Congested(s.SmoothedRTT, s.MinRTT),
		LocalAddr:        s.LocalAddr,
		RemoteAddr:       s.RemoteAddr,
		Migrations:       s.Migrations,
	}
}

// Congested applies the Congested rule to a smoothed and a minimum RTT.
func Congested(srtt, minRTT time.Duration) bool {
	if srtt <= 0 || minRTT <= 0 {
		return false
	}
	return srtt >= CongestedRTTFactor*minRTT && srtt-minRTT >= CongestedMinQueueing
}

// Source gives the path summary of a peer; *actors.Node is one.
type Source interface {
	PathStats(peer string) (Summary, error)
}

// SRTT returns the smoothed RTT of the path to peer. The error is the
// Source's (dist.ErrNotConnected when there is no session).
func SRTT(src Source, peer string) (time.Duration, error) {
	s, err := src.PathStats(peer)
	if err != nil {
		return 0, err
	}
	return s.SRTT, nil
}

// String formats the summary for logs.
func (s Summary) String() string {
	return fmt.Sprintf("srtt=%v latest=%v min=%v var=%v cwnd=%d sent=%d/%dB recv=%d/%dB lost=%d/%dB congested=%t local=%v remote=%v migrations=%d",
		s.SRTT, s.LatestRTT, s.MinRTT, s.RTTVariation, s.CongestionWindow,
		s.PacketsSent, s.BytesSent, s.PacketsReceived, s.BytesReceived, s.PacketsLost, s.BytesLost,
		s.Congested, s.LocalAddr, s.RemoteAddr, s.Migrations)
}
