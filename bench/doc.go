// Package bench holds the side-by-side workloads behind the caskbench
// command (go run ./bench/cmd/caskbench).
//
// Every workload runs, in one process, against each selected system:
//
//   - cask: Cask nodes (package actors) talking over one QUIC
//     connection per peer;
//   - protoactor: protoactor-go's own gRPC remote
//     (github.com/asynkron/protoactor-go/remote) with its default
//     configuration;
//   - raw: a bare quic-go connection with no actor runtime, as a floor
//     for latency and a ceiling for throughput, where a workload has one.
//
// All nodes live in the same process and talk over 127.0.0.1. The actor
// code (echo, pinger, bulk sender, sink) is the same protoactor actor code
// for both actor systems, and both send the same protobuf messages
// (wrapperspb.Int64Value for small messages, wrapperspb.BytesValue for
// 64 KiB ones), so the only thing that differs between the cask and
// protoactor columns is the distribution layer underneath.
//
// A system plugs in through the System interface. The Cask half lives in
// cask.go behind the build constraint !nocask, so the protoactor and raw
// halves build and run on their own with -tags nocask.
//
// Workloads (sizes are fixed; -n scales them down only for a quick check):
//
//	a pingpong-1    1 pinger/echo pair, 1,000,000 messages each way
//	b pingpong-16   16 pairs at once, 62,500 each way per pair (1,000,000 total)
//	c request-rtt   10,000 sequential RequestFuture round trips after 1,000 warm-up
//	d bulk-64k      64 KiB messages one way, 1 GiB in total
//	e conn-setup    fresh node Start to first round trip, 50 times
//	f idle-peer-mem heap and goroutines per idle connection, 100 peers on one hub
//
// See docs/performance.md for the method and how to read the table.
package bench
