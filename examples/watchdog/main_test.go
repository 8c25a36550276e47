package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The README's first command must keep working: run the demo end to end
// (it fails if the watchdog does not migrate, a message is lost, or the
// SRTT does not fall back), with the debug page served on loopback. The
// output is a short timeline, the plot has both of laptop's links with
// the fault and the migration marked, and the debug page showed the
// migration while the demo ran.
func TestWatchdogDemo(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "srtt.svg")
	sawMigration := make(chan string, 1)
	stopPoll := make(chan struct{})
	defer close(stopPoll)
	var out bytes.Buffer
	err := run(&out, options{svgPath: svg, debugAddr: "127.0.0.1:0", debugReady: func(url string) {
		go func() {
			for {
				select {
				case <-stopPoll:
					return
				case <-time.After(200 * time.Millisecond):
				}
				res, err := http.Get(url + "peers")
				if err != nil {
					continue
				}
				var st struct {
					Node  struct{ Name string }
					Peers []struct {
						Name       string
						Migrations []struct{ To string }
					}
				}
				_ = json.NewDecoder(res.Body).Decode(&st)
				res.Body.Close()
				for _, p := range st.Peers {
					if len(p.Migrations) > 0 {
						sawMigration <- st.Node.Name + " → " + p.Name
						return
					}
				}
			}
		}()
	}})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}

	var tags []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("odd line %q", line)
		}
		tags = append(tags, f[1])
	}
	if got, want := strings.Join(tags, " "), "debug start fault watchdog migrated summary plot"; got != want {
		t.Errorf("timeline tags %q, want %q", got, want)
	}
	if !regexp.MustCompile(`summary\s+sent (\d+), received (\d+), lost 0;`).MatchString(out.String()) {
		t.Errorf("no summary with lost 0 in the output")
	}

	doc, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	els := parseSVG(t, doc)
	labels := withClass(els, "marker-label")
	if len(labels) != 2 || !strings.HasPrefix(labels[0].text, "fault: +300ms on laptop ↔ hub") ||
		!strings.HasPrefix(labels[1].text, "watchdog migrates laptop ↔ hub") {
		t.Errorf("plot markers %v, want the fault then the migration", labels)
	}
	series := withClass(els, "series")
	if len(series) != 2 || series[0].attrs["data-name"] != "laptop ↔ hub" || series[1].attrs["data-name"] != "laptop ↔ worker" {
		t.Fatalf("plot series %v, want laptop ↔ hub and laptop ↔ worker", series)
	}
	if n := len(strings.Fields(series[0].attrs["points"])); n < 10 {
		t.Errorf("laptop ↔ hub has %d points, want a sample every 250ms of the run", n)
	}

	select {
	case who := <-sawMigration:
		if who != "laptop@localhost → hub@localhost" {
			t.Errorf("debug page showed a migration of %s, want laptop@localhost → hub@localhost", who)
		}
	default:
		t.Error("the debug page never showed the migration while the demo ran")
	}
}
