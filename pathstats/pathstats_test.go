package pathstats_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cask-p2p/cask/pathstats"
	"github.com/cask-p2p/cask/transport"
)

func TestFromTransportCopiesEveryField(t *testing.T) {
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 1}
	remote := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	in := transport.PathStats{
		SmoothedRTT: 3 * time.Millisecond, LatestRTT: 4 * time.Millisecond, MinRTT: time.Millisecond,
		RTTVariation: 5 * time.Millisecond, CongestionWindow: 6,
		BytesSent: 7, PacketsSent: 8, BytesReceived: 9, PacketsReceived: 10, BytesLost: 11, PacketsLost: 12,
		LocalAddr: local, RemoteAddr: remote, Migrations: 13,
	}
	want := pathstats.Summary{
		SRTT: 3 * time.Millisecond, LatestRTT: 4 * time.Millisecond, MinRTT: time.Millisecond,
		RTTVariation: 5 * time.Millisecond, CongestionWindow: 6,
		BytesSent: 7, PacketsSent: 8, BytesReceived: 9, PacketsReceived: 10, BytesLost: 11, PacketsLost: 12,
		LocalAddr: local, RemoteAddr: remote, Migrations: 13,
	}
	if got := pathstats.FromTransport(in); got != want {
		t.Fatalf("FromTransport:\n got %v\nwant %v", got, want)
	}
}

func TestCongested(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		srtt, min time.Duration
		want      bool
	}{
		{0, 0, false},             // no sample yet
		{50 * ms, 0, false},       // no minimum yet
		{100 * ms, 20 * ms, true}, // 5× and 80 ms of queueing
		{30 * ms, 20 * ms, false}, // 1.5×
		{400 * time.Microsecond, 100 * time.Microsecond, false}, // 4× but loopback jitter
		{40 * ms, 20 * ms, true},                                // exactly 2× and 20 ms above
		{25 * ms, 12 * ms, true},                                // 2.08× and 13 ms above
		{18 * ms, 9 * ms, false},                                // 2× but only 9 ms above
	} {
		if got := pathstats.Congested(tc.srtt, tc.min); got != tc.want {
			t.Errorf("Congested(%v, %v) = %t, want %t", tc.srtt, tc.min, got, tc.want)
		}
	}
}

type fakeSource map[string]pathstats.Summary

var errNoChannel = errors.New("no channel")

func (f fakeSource) PathStats(peer string) (pathstats.Summary, error) {
	s, ok := f[peer]
	if !ok {
		return pathstats.Summary{}, errNoChannel
	}
	return s, nil
}

func TestSRTT(t *testing.T) {
	src := fakeSource{"b@host": {SRTT: 7 * time.Millisecond}}
	if d, err := pathstats.SRTT(src, "b@host"); err != nil || d != 7*time.Millisecond {
		t.Fatalf("SRTT = %v, %v", d, err)
	}
	if _, err := pathstats.SRTT(src, "c@host"); !errors.Is(err, errNoChannel) {
		t.Fatalf("SRTT of an unknown peer: %v", err)
	}
}
