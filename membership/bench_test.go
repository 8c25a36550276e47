package membership_test

import (
	"testing"
	"time"
)

// BenchmarkCluster24 starts 24 real nodes (QUIC on 127.0.0.1) joining
// through one contact. It reports converge-ms, from the first Start to
// an overlay that stays healthy (symmetric, connected, no isolated node)
// for a shuffle period; msgs/node/round, membership messages sent per
// node per shuffle period in the steady state that follows
// (ShufflePeriod 250 ms, steadyRounds periods); and join-msgs/node,
// messages sent per node from start to convergence. Run it with
//
//	go test -run XXX -bench Cluster24 -benchtime 3x ./membership/
func BenchmarkCluster24(b *testing.B) {
	const total, steadyRounds = 24, 20
	for b.Loop() {
		c := newCluster(b)
		start := time.Now()
		c.start(0)
		for i := 1; i < total; i++ {
			c.start(i, nodeName(0))
		}
		converged := waitHealthy(b, c.nodes, 30*time.Second).Sub(start)
		convergeMs := float64(converged) / float64(time.Millisecond)

		var joinSent, sent0, rounds0 uint64
		for _, n := range c.nodes {
			s := stats(b, n)
			joinSent += s.Sent
			sent0 += s.Sent
			rounds0 += s.Rounds
		}
		time.Sleep(steadyRounds * testShufflePeriod)
		var sent1, rounds1 uint64
		for _, n := range c.nodes {
			s := stats(b, n)
			sent1 += s.Sent
			rounds1 += s.Rounds
		}
		b.ReportMetric(convergeMs, "converge-ms")
		b.ReportMetric(float64(sent1-sent0)/float64(rounds1-rounds0), "msgs/node/round")
		b.ReportMetric(float64(joinSent)/total, "join-msgs/node")

		stopAll(c.nodes)
	}
}
