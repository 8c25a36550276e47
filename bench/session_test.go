package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/adapter"
)

// The session benchmarks (run once; every figure is a b.ReportMetric):
//
//	go test ./bench/ -run '^$' -bench 'Resume|Handover' -benchtime 1x
//
// BenchmarkResumeAfterBlackhole blackholes one node's socket for
// blackholeFor, long enough for the idle timeout (resumeIdle) to end the
// connection, resumeRounds times, and times from the end of each
// blackhole to the first answered request. It uses only APIs that
// predate sessions, so the same file measures the build before them
// (where the connection's end is NodeDown and a new session, and what was
// in flight is lost).
//
// BenchmarkHandover times handoverCount MigratePeer calls that are
// handovers (the accepting side moves the session to a new connection
// it dials), alternating the two nodes, next to BenchmarkMigrationLatency's
// path migrations.

const (
	resumeRounds = 7
	blackholeFor = 2 * time.Second
	resumeIdle   = time.Second
	// handoverCount is the number of handovers timed.
	handoverCount = 50
)

// firstAnswerAfter polls requests from → pid until one is answered and
// returns how long after since that was.
func firstAnswerAfter(ctx context.Context, from *actors.Node, pid *actor.PID, since time.Time) (time.Duration, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		_, err := from.Root().RequestFuture(pid, wrapperspb.Int64(1), 100*time.Millisecond).Result()
		if err == nil {
			return time.Since(since), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func BenchmarkResumeAfterBlackhole(b *testing.B) {
	var out []time.Duration
	for range b.N {
		fa := adapter.NewFaulty(transport.UDPAdapter{Addr: "127.0.0.1:0"})
		peer, err := actors.Start(context.Background(), actors.Config{
			Name: "resume-b@localhost", Logger: benchLogger(),
			Transport: transport.Config{IdleTimeout: resumeIdle},
			Dist:      dist.Config{DisableDNS: true},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = peer.Stop() })
		if _, err := spawn(&caskNode{n: peer}, "echo", func() actor.Actor { return echoActor{} }); err != nil {
			b.Fatal(err)
		}
		hub, err := actors.Start(context.Background(), actors.Config{
			Name: "resume-a@localhost", Logger: benchLogger(),
			Transport: transport.Config{IdleTimeout: resumeIdle, Adapter: fa},
			Dist:      dist.Config{DisableDNS: true, Peers: map[string]string{peer.Name(): peer.Addr().String()}},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = hub.Stop() })
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		echo := actor.NewPID(peer.Name(), "echo")
		if _, err := firstAnswerAfter(ctx, hub, echo, time.Now()); err != nil {
			b.Fatal(err)
		}
		for i := range resumeRounds {
			fa.SetBlackhole(true)
			time.Sleep(blackholeFor)
			fa.SetBlackhole(false)
			d, err := firstAnswerAfter(ctx, hub, echo, time.Now())
			if err != nil {
				b.Fatalf("round %d: %v", i, err)
			}
			out = append(out, d)
		}
		cancel()
	}
	b.ReportMetric(ms(percentile(out, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(out, 0.9)), "p90-ms")
	b.Logf("%d rounds of a %v blackhole (idle timeout %v): first answer after it ended p50 %v, p90 %v, max %v",
		len(out), blackholeFor, resumeIdle, percentile(out, 0.5), percentile(out, 0.9), percentile(out, 1))
}

func BenchmarkHandover(b *testing.B) {
	var out []time.Duration
	for range b.N {
		x := startBenchNode(b, fmt.Sprintf("handover-x-%d@localhost", len(out)), nil)
		y := startBenchNode(b, fmt.Sprintf("handover-y-%d@localhost", len(out)), map[string]string{x.Name(): x.Addr().String()})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := y.Connect(ctx, x.Name()); err != nil {
			b.Fatal(err)
		}
		// y dialed: x accepted, so x's MigratePeer is a handover; after it
		// x has dialed, and y's is one.
		from, to := x, y
		for i := range handoverCount {
			start := time.Now()
			if err := from.MigratePeer(ctx, to.Name()); err != nil {
				b.Fatalf("handover %d: %v", i, err)
			}
			out = append(out, time.Since(start))
			if st := from.SessionStats(to.Name()); st.Resumptions == 0 {
				b.Fatalf("handover %d was not one: %+v", i, st)
			}
			from, to = to, from
		}
		cancel()
	}
	b.ReportMetric(ms(percentile(out, 0.5)), "p50-ms")
	b.ReportMetric(ms(percentile(out, 0.99)), "p99-ms")
	b.Logf("%d handovers: MigratePeer p50 %v, p99 %v", len(out), percentile(out, 0.5), percentile(out, 0.99))
}
