//go:build !race

// The generator check runs in the normal test pass only: it compiles and
// runs the generator and protoc-gen-go, which has nothing for the race
// detector to look at and costs minutes when built for it.

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
