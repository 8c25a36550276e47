package proto

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// TestGenerated runs the generator into a temporary directory and checks
// that the committed caskpb/*.pb.go files are exactly what it produces.
func TestGenerated(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available:", err)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", "../cmd/cask-protogen", "-out", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("running generator: %v\n%s", err, stderr.String())
	}

	want := pbFiles(t, filepath.Join(out, "caskpb"))
	got := pbFiles(t, "caskpb")
	if len(want) == 0 {
		t.Fatal("generator produced no caskpb/*.pb.go files")
	}

	const hint = "generated code is not current; run go generate ./proto/..."
	for _, name := range sortedKeys(want) {
		committed, ok := got[name]
		switch {
		case !ok:
			t.Errorf("caskpb/%s is missing: %s", name, hint)
		case !bytes.Equal(committed, want[name]):
			t.Errorf("caskpb/%s differs from generator output: %s", name, hint)
		}
	}
	for _, name := range sortedKeys(got) {
		if _, ok := want[name]; !ok {
			t.Errorf("caskpb/%s is not produced by the generator: %s", name, hint)
		}
	}
}

func pbFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	return files
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
