package dist_test

import (
	"context"
	"sync"
	"syscall"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// BenchmarkPingPong measures windowed ping-pong between two nodes: b.N
// pings, each answered by a pong; at most 10,000 in flight.
func BenchmarkPingPong(b *testing.B) {
	cfg := actors.Config{Dist: dist.Config{DiscoveryDir: b.TempDir(), DisableDNS: true}}
	a, e := startNode(b, "a@localhost", cfg), startNode(b, "b@localhost", cfg)
	if _, err := e.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
			c.Respond(m)
		}
	}), "echo"); err != nil {
		b.Fatal(err)
	}
	const window = 10000
	var done sync.WaitGroup
	var total int
	echo := actor.NewPID("b@localhost", "echo")
	got, sent := 0, 0
	if _, err := a.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *wrapperspb.BoolValue:
			for sent < window && sent < total {
				sent++
				c.Request(echo, wrapperspb.Int64(int64(sent)))
			}
		case *wrapperspb.Int64Value:
			got++
			if sent < total {
				sent++
				c.Request(echo, wrapperspb.Int64(int64(sent)))
			}
			if got == total {
				done.Done()
			}
		}
	}), "pinger"); err != nil {
		b.Fatal(err)
	}
	if err := a.Connect(context.Background(), "b@localhost"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := processCPU()
	total = b.N
	done.Add(1)
	a.Root().Send(actor.NewPID("a@localhost", "pinger"), wrapperspb.Bool(true))
	done.Wait()
	b.ReportMetric(float64(2*b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(2*b.N), "cpu-ns/msg")
}

// processCPU is the CPU time (user and system) the process has used, in
// nanoseconds. Per message it is steadier than throughput on a shared
// machine.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkBulk64K sends b.N 64 KiB messages one way, at most 32 in flight
// (acknowledged every 8), and reports bytes per second.
func BenchmarkBulk64K(b *testing.B) {
	cfg := actors.Config{Dist: dist.Config{DiscoveryDir: b.TempDir(), DisableDNS: true}}
	a, s := startNode(b, "a@localhost", cfg), startNode(b, "b@localhost", cfg)
	got := 0
	if _, err := s.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		if _, ok := c.Message().(*wrapperspb.BytesValue); ok {
			got++
			if got%8 == 0 {
				c.Send(actor.NewPID("a@localhost", "sender"), wrapperspb.Int64(int64(got)))
			}
		}
	}), "sink"); err != nil {
		b.Fatal(err)
	}
	payload := wrapperspb.Bytes(make([]byte, 64<<10))
	sink := actor.NewPID("b@localhost", "sink")
	var done sync.WaitGroup
	total, sent := 0, 0
	if _, err := a.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
		switch m := c.Message().(type) {
		case *wrapperspb.BoolValue:
			for ; sent < 32 && sent < total; sent++ {
				c.Send(sink, payload)
			}
		case *wrapperspb.Int64Value:
			for ; sent < int(m.Value)+32 && sent < total; sent++ {
				c.Send(sink, payload)
			}
			if int(m.Value) >= total {
				done.Done()
			}
		}
	}), "sender"); err != nil {
		b.Fatal(err)
	}
	if err := a.Connect(context.Background(), "b@localhost"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	total = (b.N + 7) / 8 * 8
	done.Add(1)
	a.Root().Send(actor.NewPID("a@localhost", "sender"), wrapperspb.Bool(true))
	done.Wait()
	b.ReportMetric(float64(total*(64<<10))/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}
