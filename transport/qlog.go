package transport

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// qlogTracer returns quic-go's per-connection tracer hook for
// Config.QlogDir. Each trace's writer goroutine is counted by t.wg and
// ends when quic-go closes the trace, at the end of its connection.
func (t *Transport) qlogTracer() func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	dir := t.cfg.QlogDir
	return func(_ context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
		side := "server"
		if isClient {
			side = "client"
		}
		name := fmt.Sprintf("%s_%s_%s.sqlog", time.Now().UTC().Format("20060102T150405.000000"), odcid, side)
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.cfg.Logger.Warn("transport: qlog file not created", "dir", dir, "err", err)
			return nil
		}
		seq := qlogwriter.NewConnectionFileSeq(&bufferedFile{w: bufio.NewWriterSize(f, 64<<10), f: f}, isClient, odcid)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			seq.Run()
		}()
		return seq
	}
}

// bufferedFile flushes its buffer into the file before closing it.
type bufferedFile struct {
	w *bufio.Writer
	f *os.File
}

func (b *bufferedFile) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b *bufferedFile) Close() error {
	err := b.w.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
