package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cask-p2p/cask"

// rank orders the module's packages: a package may import only packages
// of a lower rank. A package missing from the table fails the test, so a
// new package states its place when it is added.
var rank = map[string]int{
	"proto/caskpb":                  0,
	"proto":                         0,
	"cmd/cask-protogen":             0,
	"examples/messages/greetpb":     0,
	"internal/ask":                  0,
	"internal/deps":                 0,
	"internal/fielderr":             0,
	"internal/testhome":             0,
	"internal/proctest":             0,
	"internal/doccheck":             0,
	"transport/internal/atomicfile": 0,
	"internal/layering":             0,
	"membership/hyparview":          5,
	"membership/plumtree":           5,
	"transport":                     10,
	"transport/identity":            11,
	"transport/adapter":             11,
	"pathstats":                     20,
	"dist":                          30,
	"membership":                    40,
	"actors":                        50,
	"actors/testkit":                60,
	"examples/watchdog/watchdog":    60,
	"bench":                         70,
	"examples/hello":                70,
	"examples/links":                70,
	"examples/messages":             70,
	"examples/watchdog":             70,
	"bench/cmd/caskbench":           80,
	"internal/testnode":             80,
}

// pure packages are protocol state machines: inputs in, messages out.
// They import nothing of the module and no network or clock source.
var pure = map[string]bool{"membership/hyparview": true, "membership/plumtree": true}

// quicAllowed may import quic-go: the transport, and the benchmark's raw
// quic-go column, which measures quic-go itself.
var quicAllowed = map[string]bool{"transport": true, "bench": true}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		r, ok := rank[pkg]
		if !ok {
			t.Errorf("package %s has no place in the layering table (internal/layering/layering_test.go)", pkg)
			continue
		}
		seen++
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, "github.com/quic-go/") && !quicAllowed[pkg] {
				t.Errorf("%s imports %s: only transport talks to quic-go", pkg, imp)
			}
			if pure[pkg] {
				switch {
				case imp == "net" || strings.HasPrefix(imp, "net/"),
					imp == "crypto/rand", imp == "math/rand", imp == "os", imp == "sync":
					t.Errorf("%s is a pure state machine but imports %s", pkg, imp)
				case strings.HasPrefix(imp, module+"/") && !strings.HasPrefix(imp, module+"/proto/"):
					t.Errorf("%s is a pure state machine but imports %s", pkg, imp)
				}
			}
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			dr, ok := rank[dep]
			if !ok {
				continue // reported as a package of its own
			}
			if dr >= r {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", pkg, r, dep, dr)
			}
		}
	}
	if seen < 10 {
		t.Fatalf("saw only %d packages; is go list looking at the module?", seen)
	}
}
