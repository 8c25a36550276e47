package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
)

// runStream is workload h. Only Cask has user streams: protoactor has
// none, and a limit without a stream would measure nothing.
func runStream(ctx context.Context, o *Options) []Row {
	total := int64(o.scaled(StreamTotalBytes/BulkMessageSize, 16)) * BulkMessageSize
	row := Row{Workload: "stream-256m", Metric: fmt.Sprintf("bytes/s (%d MiB)", total>>20), Unit: UnitBytesPerSec, HigherIsBetter: true}
	for _, sys := range o.Systems {
		if sys.Name() != ColCask {
			continue
		}
		c, cancel := context.WithTimeout(ctx, o.Timeout)
		d, err := CaskStream(c, total, BulkMessageSize)
		cancel()
		if err != nil {
			row.fail(ColCask, err)
		} else {
			row.set(ColCask, float64(total)/d.Seconds())
			o.logf("   %-10s %s", ColCask, FormatValue(row.Values[ColCask], row.Unit))
		}
	}
	if o.Raw {
		rawBulkCell(ctx, o, &row, total)
	}
	return []Row{row}
}

// CaskStream writes total bytes in chunk-sized writes on one user stream
// between two fresh nodes; the acceptor counts them and answers one byte
// after end of stream. It returns the time from the first write to the
// answer, like RawBulk.
func CaskStream(ctx context.Context, total int64, chunk int) (time.Duration, error) {
	start := func(name string, peers map[string]string) (*actors.Node, error) {
		return actors.Start(ctx, actors.Config{Name: name, Logger: quietLogger(nil), Dist: dist.Config{Peers: peers, DisableDNS: true}})
	}
	b, err := start("stream-b@localhost", nil)
	if err != nil {
		return 0, err
	}
	defer b.Stop()
	a, err := start("stream-a@localhost", map[string]string{b.Name(): b.Addr().String()})
	if err != nil {
		return 0, err
	}
	defer a.Stop()
	got := make(chan int64, 1)
	acceptor := b.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(*dist.StreamOpened); ok {
			go func(s *dist.Stream) {
				defer s.Close()
				n, _ := io.CopyBuffer(io.Discard, s, make([]byte, chunk))
				got <- n
				_, _ = s.Write([]byte{1})
			}(m.Stream)
		}
	}))
	if err := b.RegisterAcceptor("bench", acceptor); err != nil {
		return 0, err
	}
	s, err := a.OpenStream(ctx, b.Name(), "bench")
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	buf := make([]byte, chunk)
	t0 := time.Now()
	for sent := int64(0); sent < total; sent += int64(chunk) {
		if _, err := s.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := s.CloseWrite(); err != nil {
		return 0, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return 0, fmt.Errorf("cask stream: waiting for reader: %w", err)
	}
	d := time.Since(t0)
	if n := <-got; n != total {
		return 0, fmt.Errorf("cask stream: reader got %d bytes, want %d", n, total)
	}
	return d, nil
}
