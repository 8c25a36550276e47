package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The demo runs end to end: its own message types cross the nodes and
// come back decoded as the same Go types.
func TestMessagesDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `Ada → "bonjour, Ada" (fr, greeting #1)
Linus → "hallo, Linus" (de, greeting #2)
Grace → "hello, Grace" (en, greeting #3)
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

// greetpb is what go generate makes of greet.proto today.
func TestGreetpbIsCurrent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "../../cmd/cask-protogen", "-module", "github.com/cask-p2p/cask/examples/messages", "-out", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("generator: %v\n%s", err, stderr.String())
	}
	want, err := os.ReadFile(filepath.Join(dir, "greetpb", "greet.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("greetpb", "greet.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("greetpb/greet.pb.go is not current: run go generate ./examples/messages\n(first lines of the new output: %s)",
			strings.Join(strings.SplitN(string(want), "\n", 5)[:4], " | "))
	}
}
