package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Workload sizes. They are fixed by the benchmark's definition; -n scales
// them down for a quick check only, and numbers from a scaled run are not
// for publication.
const (
	// PingPongMessages is the number of messages sent each way in
	// workloads a and b (so 2,000,000 messages are counted per run).
	PingPongMessages = 1_000_000
	// PingPongWindow is the number of requests outstanding at once. In a
	// the single pinger keeps this many in flight; in b it is split evenly
	// over the pairs, so both workloads put the same load in flight.
	PingPongWindow = 10_000
	// PingPongPairs is the number of concurrent pairs in workload b.
	PingPongPairs = 16

	// PipelineMessages is the number of messages sent one way in
	// workload c, each echoed back to a sink (2,000,000 counted per run).
	PipelineMessages = 1_000_000
	// PipelineChunk is how many messages c's sender sends per turn of
	// its mailbox before it kicks itself for the next chunk.
	PipelineChunk = 1000

	// RTTWarmup and RTTCount are workload d's sequential round trips.
	RTTWarmup = 1_000
	RTTCount  = 10_000
	// RequestTimeout bounds every RequestFuture in the benchmark.
	RequestTimeout = 5 * time.Second

	// BulkMessageSize is workload e's message payload.
	BulkMessageSize = 64 << 10
	// BulkTotalBytes is the payload moved in workload e by every system,
	// raw quic-go included: 16,384 messages of 64 KiB.
	BulkTotalBytes = 1 << 30
	// BulkWindow is the number of 64 KiB messages in flight (2 MiB). It
	// stays under gRPC's default 4 MiB message limit, which protoactor's
	// endpoint writer would otherwise exceed by batching a larger window
	// into one gRPC message.
	BulkWindow = 32
	// BulkAckEvery is how often the receiver acknowledges (512 KiB).
	BulkAckEvery = 8

	// SetupRuns is the number of fresh-node connection setups in f,
	// after SetupWarmup unrecorded ones.
	SetupRuns   = 50
	SetupWarmup = 3

	// IdlePeers is the number of peer nodes connected to one hub in g.
	IdlePeers = 100
	// IdleSettle is how long connections sit idle before g measures.
	IdleSettle = time.Second

	// StreamTotalBytes is the size of workload h's user-stream transfer.
	StreamTotalBytes = 256 << 20
)

// Options control a run.
type Options struct {
	Systems []System // actor systems to compare (cask, protoactor, limit), in column order
	Raw     bool     // also run the raw quic-go baselines
	// Scale multiplies every count (1 = the stated sizes).
	Scale float64
	// Timeout bounds one workload on one system.
	Timeout time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

func (o *Options) scaled(n, min int) int {
	s := o.Scale
	if s <= 0 || s > 1 {
		s = 1
	}
	v := int(math.Round(float64(n) * s))
	if v < min {
		v = min
	}
	return v
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Workload is one benchmark.
type Workload struct {
	Name  string
	Title string
	run   func(ctx context.Context, o *Options) []Row
}

// Workloads lists every workload in run order.
func Workloads() []Workload {
	return []Workload{
		{"pingpong-1", "a) ping-pong, 1 pair, 1,000,000 messages each way, window 10,000", runPingPong1},
		{"pingpong-16", "b) ping-pong, 16 pairs, 62,500 each way per pair (1,000,000 total), window 10,000 total", runPingPong16},
		{"pipeline-1", "c) pipeline, 1,000,000 messages sent without waiting, each echoed to a sink on the sender's node", runPipeline1},
		{"request-rtt", "d) 10,000 sequential RequestFuture round trips after 1,000 warm-up", runRequestRTT},
		{"bulk-64k", "e) 64 KiB messages one way, 1 GiB, window 32 messages", runBulk},
		{"conn-setup", "f) fresh node Start to first round trip, 50 runs", runConnSetup},
		{"idle-peer-mem", "g) memory per idle peer connection, hub + 100 peers", runIdlePeers},
		{"stream-256m", "h) 256 MiB over one Cask user stream vs one raw quic-go stream, 64 KiB writes", runStream},
	}
}

// Run runs the selected workloads (all when only is empty) and returns
// the report. Unknown names in only are an error.
func Run(ctx context.Context, o Options, only []string) (*Report, error) {
	all := Workloads()
	var sel []Workload
	if len(only) == 0 {
		sel = all
	} else {
		byName := map[string]Workload{}
		for _, w := range all {
			byName[w.Name] = w
		}
		for _, n := range only {
			w, ok := byName[n]
			if !ok {
				var names []string
				for _, w := range all {
					names = append(names, w.Name)
				}
				return nil, fmt.Errorf("unknown workload %q (have %s)", n, strings.Join(names, ", "))
			}
			sel = append(sel, w)
		}
	}
	if o.Scale <= 0 || o.Scale > 1 {
		o.Scale = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	rep := &Report{Machine: ThisMachine(), Started: time.Now(), Scale: o.Scale}
	for _, s := range o.Systems {
		rep.Systems = append(rep.Systems, s.Name())
	}
	if o.Raw {
		rep.Systems = append(rep.Systems, ColRaw)
	}
	for _, w := range sel {
		if ctx.Err() != nil {
			break
		}
		o.logf("== %s", w.Title)
		rows := w.run(ctx, &o)
		rep.Rows = append(rep.Rows, rows...)
		settle()
	}
	rep.fillRatios()
	rep.Elapsed = time.Since(rep.Started).Seconds()
	return rep, ctx.Err()
}

// settle collects garbage between workloads so one does not pay for the
// previous one's heap.
func settle() {
	runtime.GC()
	runtime.GC()
}

// each runs f once per system of systems (o.Systems, or a part of it)
// under its own timeout, recovering panics (protoactor's remote panics
// when it cannot listen).
func each(ctx context.Context, o *Options, systems []System, f func(ctx context.Context, sys System) error) {
	for _, sys := range systems {
		if ctx.Err() != nil {
			return
		}
		func() {
			c, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			g0 := runtime.NumGoroutine()
			defer func() {
				if left := leftover(g0); left > 0 {
					o.logf("   %-10s %d goroutines still running 2s after its nodes stopped", sys.Name(), left)
				}
			}()
			t0 := time.Now()
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				return f(c, sys)
			}()
			if err != nil {
				o.logf("   %-10s error after %.1fs: %v", sys.Name(), time.Since(t0).Seconds(), err)
			} else {
				o.logf("   %-10s done in %.1fs", sys.Name(), time.Since(t0).Seconds())
			}
		}()
		settle()
	}
}

// leftover waits up to 2 s for the goroutine count to fall back to
// before, and returns how many more there still are.
func leftover(before int) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := runtime.NumGoroutine() - before
		if n <= 0 || time.Now().After(deadline) {
			return max(n, 0)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var nodeSeq atomic.Int64

func nodeID(tag string) string { return fmt.Sprintf("%s-%d", tag, nodeSeq.Add(1)) }

// pair starts a server node b and a client node a that knows b, and
// connects a to b.
func pair(ctx context.Context, sys System, tag string) (a, b Node, err error) {
	b, err = sys.Start(ctx, nodeID(tag+"-b"))
	if err != nil {
		return nil, nil, fmt.Errorf("start b: %w", err)
	}
	a, err = sys.Start(ctx, nodeID(tag+"-a"), b)
	if err != nil {
		_ = b.Stop()
		return nil, nil, fmt.Errorf("start a: %w", err)
	}
	if err := sys.Connect(ctx, a, b); err != nil {
		_ = stopAll(a, b)
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	return a, b, nil
}

// A *actor.PID caches the Process it resolved to on first use, and that
// Process belongs to the sending node's actor system. So a PID value is
// never shared between sending nodes here: each sender gets its own from
// Node.PID.

func spawn(n Node, name string, p actor.Producer) (*actor.PID, error) {
	return n.Root().SpawnNamed(actor.PropsFromProducer(p), name)
}

// request does one RequestFuture round trip of a small message.
func request(root *actor.RootContext, pid *actor.PID, v int64) error {
	res, err := root.RequestFuture(pid, &wrapperspb.Int64Value{Value: v}, RequestTimeout).Result()
	if err != nil {
		return err
	}
	if m, ok := res.(*wrapperspb.Int64Value); !ok || m.Value != v {
		return fmt.Errorf("unexpected reply %T %v", res, res)
	}
	return nil
}

// wait waits for every done channel or the context, and on failure says
// how far the actors got.
func wait(ctx context.Context, root *actor.RootContext, done []chan struct{}, pids []*actor.PID) error {
	for _, d := range done {
		select {
		case <-d:
		case <-ctx.Done():
			var parts []string
			for _, pid := range pids {
				r, err := root.RequestFuture(pid, askProgress{}, time.Second).Result()
				if p, ok := r.(progress); ok && err == nil {
					parts = append(parts, fmt.Sprintf("%d/%d", p.sent, p.received))
				} else {
					parts = append(parts, "?")
				}
			}
			return fmt.Errorf("%w (sent/acked per actor: %s)", ctx.Err(), strings.Join(parts, " "))
		}
	}
	return nil
}

// ---- a, b: ping-pong ----

func runPingPong1(ctx context.Context, o *Options) []Row {
	return pingPongRows(ctx, o, "pingpong-1", 1)
}

func runPingPong16(ctx context.Context, o *Options) []Row {
	return pingPongRows(ctx, o, "pingpong-16", PingPongPairs)
}

func pingPongRows(ctx context.Context, o *Options, name string, pairs int) []Row {
	perPair := o.scaled(PingPongMessages, 1000*pairs) / pairs
	window := PingPongWindow / pairs
	row := Row{Workload: name, Metric: fmt.Sprintf("msgs/s (2x%d)", perPair*pairs), Unit: UnitMsgPerSec, HigherIsBetter: true}
	each(ctx, o, o.Systems, func(ctx context.Context, sys System) error {
		v, err := PingPong(ctx, sys, pairs, perPair, window)
		if err != nil {
			row.fail(sys.Name(), err)
			return err
		}
		row.set(sys.Name(), v)
		o.logf("   %-10s %s", sys.Name(), FormatValue(v, row.Unit))
		return nil
	})
	return []Row{row}
}

// PingPong runs pairs pinger/echo pairs between two fresh nodes, perPair
// messages each way per pair with window requests in flight per pair, and
// returns messages per second counting both directions. A warm-up pass of
// a tenth of the size runs first on the same nodes.
func PingPong(ctx context.Context, sys System, pairs, perPair, window int) (float64, error) {
	a, b, err := pair(ctx, sys, "pp")
	if err != nil {
		return 0, err
	}
	defer stopAll(a, b)
	echoes := make([]*actor.PID, pairs)
	for i := range echoes {
		name := fmt.Sprintf("echo-%d", i)
		if _, err := spawn(b, name, func() actor.Actor { return echoActor{} }); err != nil {
			return 0, err
		}
		echoes[i] = b.PID(name)
		if err := request(a.Root(), echoes[i], int64(i)); err != nil {
			return 0, fmt.Errorf("first request: %w", err)
		}
	}
	run := func(per int) (time.Duration, error) {
		done := make([]chan struct{}, pairs)
		pids := make([]*actor.PID, pairs)
		for i := range pids {
			done[i] = make(chan struct{})
			p := &pingerActor{target: echoes[i], total: int64(per), window: int64(window), done: done[i]}
			pids[i] = a.Root().Spawn(actor.PropsFromProducer(func() actor.Actor { return p }))
		}
		defer func() {
			for _, pid := range pids {
				a.Root().Stop(pid)
			}
		}()
		t0 := time.Now()
		for _, pid := range pids {
			a.Root().Send(pid, kick{})
		}
		err := wait(ctx, a.Root(), done, pids)
		return time.Since(t0), err
	}
	if _, err := run(max(perPair/10, 1)); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	d, err := run(perPair)
	if err != nil {
		return 0, err
	}
	return float64(2*pairs*perPair) / d.Seconds(), nil
}

// ---- c: pipeline ----

func runPipeline1(ctx context.Context, o *Options) []Row {
	n := o.scaled(PipelineMessages, 1000)
	row := Row{Workload: "pipeline-1", Metric: fmt.Sprintf("msgs/s (2x%d)", n), Unit: UnitMsgPerSec, HigherIsBetter: true}
	each(ctx, o, o.Systems, func(ctx context.Context, sys System) error {
		v, err := Pipeline(ctx, sys, n)
		if err != nil {
			row.fail(sys.Name(), err)
			return err
		}
		row.set(sys.Name(), v)
		o.logf("   %-10s %s", sys.Name(), FormatValue(v, row.Unit))
		return nil
	})
	return []Row{row}
}

// Pipeline has a sender actor on node a send n messages to an echo actor
// on node b without waiting for replies, each with a sink actor on a as
// its sender, so the echo passes every message on to the sink: the shape
// of an event stream. It returns messages per second counting both
// directions (2n), timed from the first send until the sink has seen the
// n-th message. The sink checks that the messages arrive in order. A
// warm-up pass of a tenth of the size runs first on the same nodes.
//
// Nothing bounds what is in flight but the system under test: a layer
// with back-pressure holds the sender up, one without queues everything.
func Pipeline(ctx context.Context, sys System, n int) (float64, error) {
	a, b, err := pair(ctx, sys, "pipe")
	if err != nil {
		return 0, err
	}
	defer stopAll(a, b)
	if _, err := spawn(b, "echo", func() actor.Actor { return echoActor{} }); err != nil {
		return 0, err
	}
	echo := b.PID("echo")
	if err := request(a.Root(), echo, 1); err != nil {
		return 0, fmt.Errorf("first request: %w", err)
	}
	run := func(n int) (time.Duration, error) {
		sink := &countSinkActor{total: int64(n), done: make(chan struct{})}
		sinkPID := a.Root().Spawn(actor.PropsFromProducer(func() actor.Actor { return sink }))
		defer a.Root().Stop(sinkPID)
		sender := &pipeSenderActor{target: echo, replyTo: sinkPID, total: int64(n), chunk: PipelineChunk}
		senderPID := a.Root().Spawn(actor.PropsFromProducer(func() actor.Actor { return sender }))
		defer a.Root().Stop(senderPID)
		t0 := time.Now()
		a.Root().Send(senderPID, kick{})
		if err := wait(ctx, a.Root(), []chan struct{}{sink.done}, []*actor.PID{senderPID, sinkPID}); err != nil {
			return 0, err
		}
		d := time.Since(t0)
		if sink.disorder != "" {
			return 0, fmt.Errorf("out of order: %s", sink.disorder)
		}
		return d, nil
	}
	if _, err := run(max(n/10, 1)); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	d, err := run(n)
	if err != nil {
		return 0, err
	}
	return float64(2*n) / d.Seconds(), nil
}

// ---- d: sequential request latency ----

func runRequestRTT(ctx context.Context, o *Options) []Row {
	n := o.scaled(RTTCount, 100)
	warm := o.scaled(RTTWarmup, 10)
	rows, record := latencyRows(o, "request-rtt", 0.10, 0.50, 0.99)
	each(ctx, o, o.Systems, func(ctx context.Context, sys System) error {
		lat, err := RequestRTT(ctx, sys, warm, n)
		record(sys.Name(), lat, err)
		return err
	})
	if o.Raw {
		c, cancel := context.WithTimeout(ctx, o.Timeout)
		lat, err := RawRTT(c, warm, n)
		cancel()
		record(ColRaw, lat, err)
	}
	return rows
}

// latencyRows returns one row per quantile of workload (named p10, p50,
// ...) and a function that records one column's latencies in all of them.
func latencyRows(o *Options, workload string, qs ...float64) (rows []Row, record func(string, []time.Duration, error)) {
	rows = make([]Row, len(qs))
	for i, q := range qs {
		rows[i] = Row{Workload: workload, Metric: fmt.Sprintf("p%d", int(math.Round(q*100))), Unit: UnitSeconds}
	}
	record = func(col string, lat []time.Duration, err error) {
		line := fmt.Sprintf("   %-10s", col)
		for i, q := range qs {
			if err != nil {
				rows[i].fail(col, err)
				continue
			}
			rows[i].set(col, Percentile(lat, q).Seconds())
			line += " " + rows[i].Metric + " " + FormatValue(rows[i].Values[col], UnitSeconds)
		}
		if err == nil {
			o.logf("%s", line)
		}
	}
	return rows, record
}

// RequestRTT does warm+n sequential RequestFuture round trips from node
// a's root context to an echo actor on node b and returns the last n.
func RequestRTT(ctx context.Context, sys System, warm, n int) ([]time.Duration, error) {
	a, b, err := pair(ctx, sys, "rtt")
	if err != nil {
		return nil, err
	}
	defer stopAll(a, b)
	if _, err := spawn(b, "echo", func() actor.Actor { return echoActor{} }); err != nil {
		return nil, err
	}
	echo := b.PID("echo")
	out := make([]time.Duration, 0, n)
	for i := 0; i < warm+n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := request(a.Root(), echo, int64(i)); err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		if i >= warm {
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}

// Percentile is the q-quantile (nearest rank) of ds.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(math.Ceil(q*float64(len(s)))) - 1
	k = min(max(k, 0), len(s)-1)
	return s[k]
}

// ---- e: 64 KiB bulk ----

func runBulk(ctx context.Context, o *Options) []Row {
	msgs := o.scaled(BulkTotalBytes/BulkMessageSize, 4*BulkWindow)
	msgs = (msgs + BulkAckEvery - 1) / BulkAckEvery * BulkAckEvery
	total := int64(msgs) * BulkMessageSize
	row := Row{Workload: "bulk-64k", Metric: fmt.Sprintf("bytes/s (%d MiB)", total>>20), Unit: UnitBytesPerSec, HigherIsBetter: true}
	each(ctx, o, o.Systems, func(ctx context.Context, sys System) error {
		v, err := Bulk(ctx, sys, msgs)
		if err != nil {
			row.fail(sys.Name(), err)
			return err
		}
		row.set(sys.Name(), v)
		o.logf("   %-10s %s", sys.Name(), FormatValue(v, row.Unit))
		return nil
	})
	if o.Raw {
		rawBulkCell(ctx, o, &row, total)
	}
	return []Row{row}
}

// rawBulkCell fills row's raw column with RawBulk of total bytes in
// BulkMessageSize writes.
func rawBulkCell(ctx context.Context, o *Options, row *Row, total int64) {
	c, cancel := context.WithTimeout(ctx, o.Timeout)
	d, err := RawBulk(c, total, BulkMessageSize)
	cancel()
	if err != nil {
		row.fail(ColRaw, err)
		return
	}
	row.set(ColRaw, float64(total)/d.Seconds())
	o.logf("   %-10s %s", ColRaw, FormatValue(row.Values[ColRaw], row.Unit))
}

// Bulk sends msgs messages of BulkMessageSize bytes from a sender actor on
// node a to a counting sink on node b, BulkWindow in flight, and returns
// payload bytes per second measured until the last acknowledgement. A
// warm-up of 4 windows runs first on the same connection.
func Bulk(ctx context.Context, sys System, msgs int) (float64, error) {
	a, b, err := pair(ctx, sys, "bulk")
	if err != nil {
		return 0, err
	}
	defer stopAll(a, b)
	if _, err := spawn(b, "echo", func() actor.Actor { return echoActor{} }); err != nil {
		return 0, err
	}
	if err := request(a.Root(), b.PID("echo"), 1); err != nil {
		return 0, fmt.Errorf("first request: %w", err)
	}
	payload := make([]byte, BulkMessageSize)
	for i := range payload {
		payload[i] = byte(i)
	}
	run := func(sink string, n int) (time.Duration, error) {
		if _, err := spawn(b, sink, func() actor.Actor { return &sinkActor{ackEvery: BulkAckEvery} }); err != nil {
			return 0, err
		}
		done := make(chan struct{})
		s := &blasterActor{target: b.PID(sink), payload: payload, total: int64(n), window: BulkWindow, done: done}
		pid := a.Root().Spawn(actor.PropsFromProducer(func() actor.Actor { return s }))
		defer a.Root().Stop(pid)
		t0 := time.Now()
		a.Root().Send(pid, kick{})
		err := wait(ctx, a.Root(), []chan struct{}{done}, []*actor.PID{pid})
		return time.Since(t0), err
	}
	if _, err := run("sink-warm", 4*BulkWindow); err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	d, err := run("sink", msgs)
	if err != nil {
		return 0, err
	}
	return float64(int64(msgs)*BulkMessageSize) / d.Seconds(), nil
}

// ---- f: connection setup ----

func runConnSetup(ctx context.Context, o *Options) []Row {
	n := o.scaled(SetupRuns, 5)
	rows, record := latencyRows(o, "conn-setup", 0.50, 0.90)
	each(ctx, o, networked(o.Systems), func(ctx context.Context, sys System) error {
		lat, err := ConnSetup(ctx, sys, n)
		record(sys.Name(), lat, err)
		return err
	})
	if o.Raw {
		c, cancel := context.WithTimeout(ctx, o.Timeout)
		lat, err := RawSetup(c, n)
		cancel()
		record(ColRaw, lat, err)
	}
	return rows
}

// ConnSetup starts, n times (after SetupWarmup unrecorded runs), a fresh
// node and times from the start of Start to the end of its first
// successful RequestFuture round trip to an echo actor on a long-lived
// hub node. Each fresh node is stopped, untimed, before the next starts.
func ConnSetup(ctx context.Context, sys System, n int) ([]time.Duration, error) {
	hub, err := sys.Start(ctx, nodeID("setup-hub"))
	if err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	defer stopAll(hub)
	if _, err := spawn(hub, "echo", func() actor.Actor { return echoActor{} }); err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < SetupWarmup+n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		node, err := sys.Start(ctx, nodeID("setup"), hub)
		if err != nil {
			return nil, fmt.Errorf("start %d: %w", i, err)
		}
		if err = sys.Connect(ctx, node, hub); err == nil {
			err = request(node.Root(), hub.PID("echo"), int64(i))
		}
		d := time.Since(t0)
		if serr := node.Stop(); err == nil && serr != nil {
			err = serr
		}
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", i, err)
		}
		if i >= SetupWarmup {
			out = append(out, d)
		}
	}
	return out, nil
}

// ---- g: memory per idle peer ----

func runIdlePeers(ctx context.Context, o *Options) []Row {
	peers := o.scaled(IdlePeers, 10)
	heap := Row{Workload: "idle-peer-mem", Metric: fmt.Sprintf("live heap/peer (%d)", peers), Unit: UnitBytes}
	stack := Row{Workload: "idle-peer-mem", Metric: "stacks/peer", Unit: UnitBytes}
	gor := Row{Workload: "idle-peer-mem", Metric: "goroutines/peer", Unit: UnitCount}
	each(ctx, o, networked(o.Systems), func(ctx context.Context, sys System) error {
		m, err := IdlePeerCost(ctx, sys, peers)
		if err != nil {
			heap.fail(sys.Name(), err)
			stack.fail(sys.Name(), err)
			gor.fail(sys.Name(), err)
			return err
		}
		heap.set(sys.Name(), m.HeapPerPeer)
		stack.set(sys.Name(), m.StackPerPeer)
		gor.set(sys.Name(), m.GoroutinesPerPeer)
		o.logf("   %-10s heap %s stacks %s goroutines %.1f per peer", sys.Name(),
			FormatValue(m.HeapPerPeer, UnitBytes), FormatValue(m.StackPerPeer, UnitBytes), m.GoroutinesPerPeer)
		return nil
	})
	return []Row{heap, stack, gor}
}

// PeerCost is the per-connection cost measured by IdlePeerCost.
type PeerCost struct {
	HeapPerPeer       float64 // live heap (HeapAlloc after GC), bytes
	StackPerPeer      float64 // goroutine stacks (StackInuse), bytes
	GoroutinesPerPeer float64
}

// IdlePeerCost starts a hub and peers peer nodes, all in this process,
// measures the process after a full GC, connects every peer to the hub
// with one request each, lets the connections sit idle for IdleSettle,
// measures again, and divides the difference by peers. Both ends of every
// connection live in this process, so the figure is the cost of one
// connection on both of its nodes together.
func IdlePeerCost(ctx context.Context, sys System, peers int) (PeerCost, error) {
	hub, err := sys.Start(ctx, nodeID("idle-hub"))
	if err != nil {
		return PeerCost{}, fmt.Errorf("start hub: %w", err)
	}
	nodes := []Node{hub}
	defer func() { _ = stopAll(nodes...) }()
	if _, err := spawn(hub, "echo", func() actor.Actor { return echoActor{} }); err != nil {
		return PeerCost{}, err
	}
	for i := 0; i < peers; i++ {
		n, err := sys.Start(ctx, nodeID("idle"), hub)
		if err != nil {
			return PeerCost{}, fmt.Errorf("start peer %d: %w", i, err)
		}
		nodes = append(nodes, n)
	}
	time.Sleep(IdleSettle)
	before := measure()
	for i, n := range nodes[1:] {
		if err := sys.Connect(ctx, n, hub); err != nil {
			return PeerCost{}, fmt.Errorf("connect peer %d: %w", i, err)
		}
		if err := request(n.Root(), hub.PID("echo"), int64(i)); err != nil {
			return PeerCost{}, fmt.Errorf("request peer %d: %w", i, err)
		}
	}
	select {
	case <-time.After(IdleSettle):
	case <-ctx.Done():
		return PeerCost{}, ctx.Err()
	}
	after := measure()
	p := float64(peers)
	return PeerCost{
		HeapPerPeer:       float64(int64(after.heap)-int64(before.heap)) / p,
		StackPerPeer:      float64(int64(after.stack)-int64(before.stack)) / p,
		GoroutinesPerPeer: float64(after.goroutines-before.goroutines) / p,
	}, nil
}

type memSample struct {
	heap, stack uint64
	goroutines  int
}

func measure() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}
