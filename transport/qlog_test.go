package transport

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With QlogDir set, each side of a connection writes its own qlog trace,
// complete once the connection is closed (Close waits for the writers).
func TestQlogDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "qlog") // created by Start
	a := startTransport(t, Config{QlogDir: dir})
	b := startTransport(t, Config{QlogDir: dir})
	dialed, accepted := connect(t, a, b)
	wait := echoStreams(t, accepted)
	st, err := dialed.OpenStream(testContext(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if got, err := io.ReadAll(st); err != nil || string(got) != "ping" {
		t.Fatalf("echo: %q, %v", got, err)
	}
	dialed.CloseWithError(CodeShutdown, "done")
	wait()
	a.Close()
	b.Close()

	files, err := filepath.Glob(filepath.Join(dir, "*.sqlog"))
	if err != nil {
		t.Fatal(err)
	}
	var client, server int
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(body, []byte("packet_sent")) || !bytes.Contains(body, []byte("packet_received")) {
			t.Errorf("%s (%d bytes) has no packet events", f, len(body))
		}
		switch {
		case strings.HasSuffix(f, "_client.sqlog"):
			client++
		case strings.HasSuffix(f, "_server.sqlog"):
			server++
		}
	}
	if client != 1 || server != 1 {
		t.Fatalf("qlog files %v: want one client and one server trace", files)
	}
}

func TestQlogDirNotADirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := New(Config{QlogDir: file, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Start(); err == nil || !strings.Contains(err.Error(), "QlogDir") {
		t.Fatalf("Start with QlogDir naming a file: %v", err)
	}
}
