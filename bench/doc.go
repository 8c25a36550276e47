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
//   - limit: the same actors with no distribution layer: the nodes share
//     one protoactor actor system, and every message from one node to
//     another is protobuf-encoded and decoded into a fresh message once on
//     its way, then posted to the target's mailbox (limitSystem). It is
//     what protoactor mailboxes and protobuf allow, the ceiling for
//     throughput and the floor for latency of any layer built on them;
//   - raw: a bare quic-go connection with no actor runtime, as a floor
//     for latency and a ceiling for throughput, where a workload has one.
//
// All nodes live in the same process and talk over 127.0.0.1. The actor
// code (echo, pinger, pipeline sender, bulk sender, sinks) is the same
// protoactor actor code for cask, protoactor and limit, and all three send
// the same protobuf messages (wrapperspb.Int64Value for small messages,
// wrapperspb.BytesValue for 64 KiB ones), so the only thing that differs
// between those columns is the distribution layer underneath, or its
// absence. The limit has no connections, so the workloads about
// connections (conn-setup, idle-peer-mem) and user streams (stream-256m)
// leave it out.
//
// A system plugs in through the System interface.
//
// Workloads (sizes are fixed; -n scales them down only for a quick check):
//
//	a pingpong-1    1 pinger/echo pair, 1,000,000 messages each way
//	b pingpong-16   16 pairs at once, 62,500 each way per pair (1,000,000 total)
//	c pipeline-1    1,000,000 messages sent without waiting, each echoed to a sink on the sender's node
//	d request-rtt   10,000 sequential RequestFuture round trips after 1,000 warm-up
//	e bulk-64k      64 KiB messages one way, 1 GiB in total
//	f conn-setup    fresh node Start to first round trip, 50 times
//	g idle-peer-mem heap and goroutines per idle connection, 100 peers on one hub
//	h stream-256m   256 MiB over one Cask user stream, 64 KiB writes
//
// See docs/performance.md for the method and how to read the table.
package bench
