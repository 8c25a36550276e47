// Command caskbench runs Cask and protoactor-go's gRPC remote side by
// side, in one process, over 127.0.0.1, next to the limit (the same actors
// in one actor system, each message encoded and decoded once) and raw
// quic-go where a workload has a baseline, and prints one table.
//
//	go run ./bench/cmd/caskbench                       # everything, stated sizes
//	go run ./bench/cmd/caskbench -n 0.05               # quick check, 5% of the counts
//	go run ./bench/cmd/caskbench -only=request-rtt,conn-setup
//	go run ./bench/cmd/caskbench -systems=cask,limit -only=pipeline-1
//	go run ./bench/cmd/caskbench -json > bench.json
//	go run ./bench/cmd/caskbench -metrics -systems=cask -only=pingpong-1   # cost of metrics
//	go run ./bench/cmd/caskbench -metrics -actor-metrics=false ...         # Cask's instruments only
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/cask-p2p/cask/bench"
)

func main() {
	var (
		only         = flag.String("only", "", "comma-separated workloads to run (default all): "+workloadNames())
		scale        = flag.Float64("n", 1, "scale every count by this factor in (0,1] for a quick check; 1 = the stated sizes")
		asJSON       = flag.Bool("json", false, "print the report as JSON instead of a table")
		systems      = flag.String("systems", strings.Join(append(bench.Registered(), bench.ColRaw), ","), "comma-separated systems to run: cask, protoactor, limit, raw")
		timeout      = flag.Duration("timeout", 2*time.Minute, "limit for one workload on one system")
		quiet        = flag.Bool("q", false, "no progress lines on stderr")
		metrics      = flag.Bool("metrics", false, "also run Cask with an OpenTelemetry MeterProvider on every node (column cask+metrics, ratio cask+metrics/cask)")
		actorMetrics = flag.Bool("actor-metrics", true, "with -metrics: protoactor's actor metrics on too (false: Config.DisableActorMetrics, Cask's instruments only)")
	)
	flag.Parse()

	opts := bench.Options{Scale: *scale, Timeout: *timeout}
	if !*quiet {
		opts.Log = os.Stderr
	}
	for _, name := range split(*systems) {
		if name == bench.ColRaw {
			opts.Raw = true
			continue
		}
		s, ok := bench.Lookup(name)
		if !ok {
			fatalf("unknown system %q (have %s, raw)", name, strings.Join(bench.Registered(), ", "))
		}
		opts.Systems = append(opts.Systems, s)
	}
	if *metrics {
		// Right after cask, so the two columns run back to back.
		at := 0
		for i, s := range opts.Systems {
			if s.Name() == bench.ColCask {
				at = i + 1
			}
		}
		opts.Systems = slices.Insert(opts.Systems, at, bench.CaskWithMetrics(*actorMetrics))
	}
	if len(opts.Systems) == 0 && !opts.Raw {
		fatalf("no systems selected")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, opts, split(*only))
	if rep == nil {
		fatalf("%v", err)
	}
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteTable(os.Stdout)
	}
	if err != nil {
		fatalf("%v", err)
	}
	for _, r := range rep.Rows {
		if len(r.Errors) > 0 {
			os.Exit(1)
		}
	}
}

func workloadNames() string {
	var names []string
	for _, w := range bench.Workloads() {
		names = append(names, w.Name)
	}
	return strings.Join(names, ", ")
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "caskbench: "+format+"\n", args...)
	os.Exit(2)
}
