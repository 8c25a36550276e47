package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// The migration benchmark (run it once; every figure is a b.ReportMetric):
//
//	go test ./bench/ -run '^$' -bench Migration -benchtime 1x
//
// BenchmarkMigrationLatency times MigrateCount migrations of one idle
// connection on loopback (fresh UDP socket, same IP, new port) through
// Node.MigratePeer, and as many raw quic-go AddPath+Probe+Switch in the
// same run. It also reports the open files after the Cask migrations,
// less those before: right after the last one (the path in use and those
// still draining) and once the paths left have drained. Raw
// quic-go keeps every socket a connection migrated to until the
// connection ends, so the raw side uses a fresh connection every
// rawMigrationsPerConn migrations.
//
// BenchmarkMigrationGap keeps a pinger at PingPongWindow outstanding
// requests to an echo on another node and migrates the connection
// gapRounds times; it reports the longest gap between two consecutive
// replies in a window around each migration, and the longest gap in a
// steady window of the same length before it, for comparison.

const (
	// MigrateCount is the number of migrations timed per system.
	MigrateCount = 100
	// rawMigrationsPerConn bounds the sockets a raw quic-go connection
	// holds.
	rawMigrationsPerConn = 15
	// gapRounds is the number of migrations under ping-pong load.
	gapRounds = 10
	// gapSteady is the load time before and after each migration.
	gapSteady = 400 * time.Millisecond
	// gapMargin widens the window around a migration on both sides.
	gapMargin = 50 * time.Millisecond
)

func benchLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startBenchNode(b *testing.B, name string, peers map[string]string) *actors.Node {
	b.Helper()
	n, err := actors.Start(context.Background(), actors.Config{
		Name:   name,
		Logger: benchLogger(),
		Dist: dist.Config{
			DisableDNS: true,
			Peers:      peers,
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Stop() })
	return n
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// caskMigrations times n MigratePeer calls on one connection and returns
// the open files after them less those before: right after the last
// migration, and once the paths left drained (at most 5 s later).
func caskMigrations(b *testing.B, n int) (took []time.Duration, extraFiles, settledFiles int) {
	peer := startBenchNode(b, "mig-peer@localhost", nil)
	hub := startBenchNode(b, "mig-hub@localhost", map[string]string{peer.Name(): peer.Addr().String()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hub.Connect(ctx, peer.Name()); err != nil {
		b.Fatal(err)
	}
	files := openFiles(b)
	took = make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := hub.MigratePeer(ctx, peer.Name()); err != nil {
			b.Fatalf("migration %d: %v", i, err)
		}
		took = append(took, time.Since(start))
	}
	extraFiles = openFiles(b) - files
	for deadline := time.Now().Add(5 * time.Second); openFiles(b) > files+1 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return took, extraFiles, openFiles(b) - files
}

// openFiles counts this process's open file descriptors.
func openFiles(b *testing.B) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatalf("count open files: %v", err)
	}
	return len(ents)
}

// rawMigrations times n quic-go AddPath+Probe+Switch calls, over fresh
// connections every rawMigrationsPerConn.
func rawMigrations(b *testing.B, n int) []time.Duration {
	serverTLS, clientTLS, err := rawTLS()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := startRawServer(serverTLS, func(*quic.Stream) {})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.close()
	server, err := net.ResolveUDPAddr("udp", srv.addr())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var closers []io.Closer
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i].Close()
		}
	}()
	udp := func() *net.UDPConn {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			b.Fatal(err)
		}
		closers = append(closers, pc)
		return pc
	}
	var conn *quic.Conn
	out := make([]time.Duration, 0, n)
	for i := range n {
		if i%rawMigrationsPerConn == 0 {
			if conn != nil {
				_ = conn.CloseWithError(0, "")
			}
			tr := &quic.Transport{Conn: udp()}
			closers = append(closers, tr)
			conn, err = tr.Dial(ctx, server, clientTLS, &quic.Config{})
			if err != nil {
				b.Fatal(err)
			}
		}
		tr := &quic.Transport{Conn: udp()}
		closers = append(closers, tr)
		start := time.Now()
		path, err := conn.AddPath(tr)
		if err == nil {
			err = path.Probe(ctx)
		}
		if err == nil {
			err = path.Switch()
		}
		if err != nil {
			b.Fatalf("raw migration %d: %v", i, err)
		}
		out = append(out, time.Since(start))
	}
	_ = conn.CloseWithError(0, "")
	return out
}

func BenchmarkMigrationLatency(b *testing.B) {
	var cask, raw []time.Duration
	extraFiles, settledFiles := 0, 0
	for range b.N {
		took, files, settled := caskMigrations(b, MigrateCount)
		cask = append(cask, took...)
		extraFiles, settledFiles = max(extraFiles, files), max(settledFiles, settled)
		raw = append(raw, rawMigrations(b, MigrateCount)...)
	}
	b.ReportMetric(float64(extraFiles), "cask-files-after")
	b.ReportMetric(float64(settledFiles), "cask-files-settled")
	b.ReportMetric(ms(percentile(cask, 0.5)), "cask-p50-ms")
	b.ReportMetric(ms(percentile(cask, 0.99)), "cask-p99-ms")
	b.ReportMetric(ms(percentile(raw, 0.5)), "raw-p50-ms")
	b.ReportMetric(ms(percentile(raw, 0.99)), "raw-p99-ms")
	b.ReportMetric(float64(percentile(cask, 0.5))/float64(percentile(raw, 0.5)), "p50-ratio")
	b.ReportMetric(float64(percentile(cask, 0.99))/float64(percentile(raw, 0.99)), "p99-ratio")
	b.Logf("%d migrations each: cask MigratePeer p50 %v p99 %v (one connection; open files after less before: %d, %d once drained); raw quic-go p50 %v p99 %v",
		len(cask), percentile(cask, 0.5), percentile(cask, 0.99), extraFiles, settledFiles, percentile(raw, 0.5), percentile(raw, 0.99))
}

// timedPinger keeps window requests outstanding to target until told to
// stop and records every gap between consecutive replies longer than
// gapFloor. Recording only those keeps the recorder out of the
// measurement: appending millions of timestamps to one slice makes the
// pinger itself stall for tens of milliseconds whenever the slice grows.
type timedPinger struct {
	target  *actor.PID
	window  int
	stopped bool
	seq     int64
	last    int64
	gaps    []gap
}

// gap is a pause between two replies: the later reply's arrival and the
// pause before it.
type gap struct{ at, d int64 }

// gapFloor is the smallest gap recorded; a window with none reports it.
const gapFloor = 200 * time.Microsecond

type stopPinger struct{}

type pingerTimes struct {
	gaps    []gap
	replies int64
}

func (p *timedPinger) Receive(c actor.Context) {
	switch c.Message().(type) {
	case kick:
		for range p.window {
			p.seq++
			c.Request(p.target, &wrapperspb.Int64Value{Value: p.seq})
		}
	case *wrapperspb.Int64Value:
		now := time.Now().UnixNano()
		if p.last != 0 && now-p.last > int64(gapFloor) {
			p.gaps = append(p.gaps, gap{at: now, d: now - p.last})
		}
		p.last = now
		if !p.stopped {
			p.seq++
			c.Request(p.target, &wrapperspb.Int64Value{Value: p.seq})
		}
	case stopPinger:
		p.stopped = true
		c.Respond(pingerTimes{gaps: p.gaps, replies: p.seq - int64(p.window)})
	}
}

// maxGap is the longest recorded gap whose later reply falls in
// [from, to]; gapFloor when none was recorded there.
func maxGap(gaps []gap, from, to time.Time) time.Duration {
	lo, hi := from.UnixNano(), to.UnixNano()
	worst := int64(gapFloor)
	for _, g := range gaps {
		if g.at >= lo && g.at <= hi {
			worst = max(worst, g.d)
		}
	}
	return time.Duration(worst)
}

func BenchmarkMigrationGap(b *testing.B) {
	var around, steady []time.Duration
	var migrations []time.Duration
	var replies int
	for range b.N {
		echo := startBenchNode(b, fmt.Sprintf("gap-echo-%d@localhost", len(around)), nil)
		if _, err := echo.Root().SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return echoActor{} }), "echo"); err != nil {
			b.Fatal(err)
		}
		pingNode := startBenchNode(b, fmt.Sprintf("gap-ping-%d@localhost", len(around)), map[string]string{echo.Name(): echo.Addr().String()})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := pingNode.Connect(ctx, echo.Name()); err != nil {
			b.Fatal(err)
		}
		p := &timedPinger{target: actor.NewPID(echo.Name(), "echo"), window: PingPongWindow}
		pid := pingNode.Root().Spawn(actor.PropsFromProducer(func() actor.Actor { return p }))
		pingNode.Root().Send(pid, kick{})
		type round struct{ before, start, end time.Time }
		var rounds []round
		for range gapRounds {
			before := time.Now()
			time.Sleep(gapSteady) // load runs; this is the measured period
			start := time.Now()
			if err := pingNode.MigratePeer(ctx, echo.Name()); err != nil {
				b.Fatalf("migration under load: %v", err)
			}
			end := time.Now()
			rounds = append(rounds, round{before, start, end})
			migrations = append(migrations, end.Sub(start))
		}
		time.Sleep(gapSteady)
		res, err := pingNode.Root().RequestFuture(pid, stopPinger{}, 10*time.Second).Result()
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		times := res.(pingerTimes)
		replies += int(times.replies)
		for _, r := range rounds {
			width := r.end.Sub(r.start) + 2*gapMargin
			around = append(around, maxGap(times.gaps, r.start.Add(-gapMargin), r.end.Add(gapMargin)))
			// A steady window of the same width, well before the migration.
			steady = append(steady, maxGap(times.gaps, r.before.Add(gapMargin), r.before.Add(gapMargin+width)))
		}
	}
	b.ReportMetric(ms(slices.Max(around)), "gap-max-ms")
	b.ReportMetric(ms(percentile(around, 0.5)), "gap-p50-ms")
	b.ReportMetric(ms(slices.Max(steady)), "steady-gap-max-ms")
	b.ReportMetric(ms(percentile(migrations, 0.5)), "loaded-migrate-p50-ms")
	b.Logf("%d migrations under ping-pong load (window %d, %d replies): longest gap around a migration %v (p50 %v); longest gap in equal steady windows %v; MigratePeer under load p50 %v max %v",
		len(around), PingPongWindow, replies, slices.Max(around), percentile(around, 0.5), slices.Max(steady),
		percentile(migrations, 0.5), slices.Max(migrations))
}
