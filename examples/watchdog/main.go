// Command watchdog is Cask's first demo: three nodes on loopback join one
// membership overlay and exchange traffic; then 300 ms is added to one
// link's round trip. The SRTT watchdog on the node that dialed that link
// sees two slow samples in a row, migrates the connection to a fresh
// socket (a clean path), and the SRTT falls back — with no message lost.
// It prints a short timeline and writes an SVG plot of the SRTT of each
// of the watchdog's links, with the fault and the migration marked.
//
//	go run ./examples/watchdog [-svg file] [-debug-addr 127.0.0.1:8080 [-hold 1m]]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/actors/testkit"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/examples/watchdog/watchdog"
	"github.com/cask-p2p/cask/membership"
)

// Demo settings: a short sample period so the story fits in seconds.
const (
	samplePeriod = 250 * time.Millisecond
	threshold    = watchdog.DefaultThreshold
	addedRTT     = 300 * time.Millisecond
	trafficEvery = 10 * time.Millisecond
)

// options are the demo's flags.
type options struct {
	// svgPath is where the SRTT plot goes.
	svgPath string
	// debugAddr, when set, serves laptop's debug page (Node.DebugHandler)
	// there while the demo runs.
	debugAddr string
	// hold keeps the nodes up this long after the summary.
	hold time.Duration
	// debugReady, when set, is called with the debug page's URL once it
	// is served (tests).
	debugReady func(url string)
}

func main() {
	o := options{}
	flag.StringVar(&o.svgPath, "svg", filepath.Join(os.TempDir(), "cask-watchdog-srtt.svg"), "write the SRTT plot (SVG) to this file")
	flag.StringVar(&o.debugAddr, "debug-addr", "", "serve laptop's debug page on this address while the demo runs, e.g. 127.0.0.1:8080")
	flag.DurationVar(&o.hold, "hold", 0, "keep the nodes (and the debug page) up this long after the summary")
	flag.Parse()
	if err := run(os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "watchdog demo:", err)
		os.Exit(1)
	}
}

// story is what the demo prints and plots; the observer actor and the
// main goroutine both add to it.
type story struct {
	start time.Time
	out   io.Writer

	mu       sync.Mutex
	samples  map[string][]plotPoint // peer → SRTT samples
	markers  []plotMarker
	migrated bool
	err      error
}

// say prints one timeline line: the time since start, a tag, the text.
func (s *story) say(tag, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, "%6.2fs  %-9s %s\n", time.Since(s.start).Seconds(), tag, fmt.Sprintf(format, args...))
}

func (s *story) mark(label string) {
	s.mu.Lock()
	s.markers = append(s.markers, plotMarker{At: time.Since(s.start), Label: label})
	s.mu.Unlock()
}

func (s *story) sample(peer string, srtt time.Duration) {
	s.mu.Lock()
	s.samples[peer] = append(s.samples[peer], plotPoint{At: time.Since(s.start), SRTT: srtt})
	s.mu.Unlock()
}

// last returns peer's last n samples.
func (s *story) last(peer string, n int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	pts := s.samples[peer]
	var out []string
	for _, p := range pts[max(0, len(pts)-n):] {
		out = append(out, p.SRTT.Round(time.Millisecond).String())
	}
	return out
}

// short is a node name without its host, for labels.
func short(node string) string { name, _, _ := strings.Cut(node, "@"); return name }

func run(out io.Writer, o options) error {
	s := &story{start: time.Now(), out: out, samples: make(map[string][]plotPoint)}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	c, err := testkit.StartCluster(3, testkit.ClusterConfig{
		Name: func(i int) string { return []string{"hub@localhost", "laptop@localhost", "worker@localhost"}[i] },
		Node: actors.Config{
			Membership: membership.Config{ShufflePeriod: time.Second},
			Dist:       dist.Config{CountTraffic: true}, // message counts on the debug page
		},
	})
	if err != nil {
		return err
	}
	defer c.Stop()
	hub, laptop, worker := c.Node(0), c.Node(1), c.Node(2)

	if o.debugAddr != "" {
		stop, err := serveDebug(o, laptop, s)
		if err != nil {
			return err
		}
		defer stop() // before c.Stop: deferred calls run last first
	}

	// laptop and worker join through hub; laptop dials hub, so laptop is
	// the side that may migrate that connection.
	for _, n := range []*actors.Node{laptop, worker} {
		if err := n.Join(ctx, hub.Name()); err != nil {
			return fmt.Errorf("%s join: %w", n.Name(), err)
		}
	}
	for _, n := range c.Nodes() {
		if _, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(c actor.Context) {
			if m, ok := c.Message().(*wrapperspb.Int64Value); ok {
				c.Respond(m)
			}
		}), "echo"); err != nil {
			return err
		}
	}
	s.say("start", "%s, %s, %s on loopback; %s and %s joined through %s (%s's active view %v); traffic every %v",
		hub.Name(), laptop.Name(), worker.Name(), short(laptop.Name()), short(worker.Name()), short(hub.Name()),
		short(laptop.Name()), laptop.ActiveView(), trafficEvery)

	// Traffic: laptop asks hub and worker every 10 ms.
	var sent, received atomic.Int64
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		tick := time.NewTicker(trafficEvery)
		defer tick.Stop()
		var seq int64
		for {
			select {
			case <-stopTraffic:
				return
			case <-tick.C:
			}
			for _, peer := range []*actors.Node{hub, worker} {
				seq++
				sent.Add(1)
				fut := laptop.Root().RequestFuture(actor.NewPID(peer.Name(), "echo"), wrapperspb.Int64(seq), 10*time.Second)
				go func() {
					if _, err := fut.Result(); err == nil {
						received.Add(1)
					}
				}()
			}
		}
	}()

	// The watchdog on laptop; its observer records the story.
	var lastHubSRTT atomic.Int64
	observer := laptop.Root().Spawn(actor.PropsFromFunc(func(ac actor.Context) {
		switch ev := ac.Message().(type) {
		case *watchdog.Sampled:
			if ev.Err != nil {
				return
			}
			if ev.Peer == hub.Name() {
				lastHubSRTT.Store(int64(ev.SRTT))
			}
			s.sample(ev.Peer, ev.SRTT)
		case *watchdog.MigrationStarted:
			s.say("watchdog", "%s: two samples over %v in a row (%s): migrating to a fresh socket",
				ev.Peer, threshold, strings.Join(s.last(ev.Peer, 2), ", "))
		case *watchdog.MigrationFinished:
			if ev.Err != nil {
				s.say("migrate", "%s failed after %v: %v", ev.Peer, ev.Took.Round(time.Microsecond), ev.Err)
				s.mu.Lock()
				s.err = ev.Err
				s.mu.Unlock()
				return
			}
			sum, _ := laptop.PathStats(ev.Peer)
			s.say("migrated", "%s ↔ %s in %v; path now %s → %s", short(laptop.Name()), short(ev.Peer),
				ev.Took.Round(time.Microsecond), sum.LocalAddr, sum.RemoteAddr)
			s.mark(fmt.Sprintf("watchdog migrates %s ↔ %s (%v)", short(laptop.Name()), short(ev.Peer), ev.Took.Round(time.Microsecond)))
			s.mu.Lock()
			s.migrated = true
			s.mu.Unlock()
		}
	}))
	laptop.Root().Spawn(watchdog.Props(watchdog.Config{
		Period:    samplePeriod,
		Threshold: threshold,
		Stats:     laptop,
		Migrator:  watchdog.NodeMigrator{Node: laptop},
		Subscribe: laptop.Subscribe,
		Observer:  observer,
	}))

	time.Sleep(1500 * time.Millisecond)
	s.say("fault", "adding %v to the round trip of %s ↔ %s (its current path)", addedRTT, short(laptop.Name()), short(hub.Name()))
	s.mark(fmt.Sprintf("fault: +%v on %s ↔ %s", addedRTT, short(laptop.Name()), short(hub.Name())))
	c.Link(0, 1).SetDelay(addedRTT / 2)

	deadline := time.Now().Add(15 * time.Second)
	for {
		s.mu.Lock()
		migrated, err := s.migrated, s.err
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if migrated {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the watchdog did not migrate the slow peer within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let a few samples show the SRTT on the new path.
	recovered := time.Now().Add(5 * time.Second)
	for time.Duration(lastHubSRTT.Load()) > threshold && time.Now().Before(recovered) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(3 * samplePeriod)
	close(stopTraffic)
	<-trafficDone
	drain := time.Now().Add(5 * time.Second)
	for received.Load() < sent.Load() && time.Now().Before(drain) {
		time.Sleep(10 * time.Millisecond)
	}
	lost := sent.Load() - received.Load()
	srtt := time.Duration(lastHubSRTT.Load())
	s.say("summary", "sent %d, received %d, lost %d; %s srtt %v after the migration (threshold %v)",
		sent.Load(), received.Load(), lost, short(hub.Name()), srtt.Round(100*time.Microsecond), threshold)

	if err := s.writePlot(o.svgPath, laptop.Name()); err != nil {
		return err
	}
	s.say("plot", "%s", o.svgPath)
	switch {
	case lost != 0:
		return fmt.Errorf("%d messages lost", lost)
	case srtt > threshold:
		return fmt.Errorf("srtt stayed at %v after the migration", srtt)
	}
	if o.hold > 0 {
		s.say("hold", "keeping the nodes up for %v", o.hold)
		time.Sleep(o.hold)
	}
	return nil
}

// writePlot writes the SRTT of each of the watchdog's links, with the
// fault and the migration marked, to path.
func (s *story) writePlot(path, watcher string) error {
	s.mu.Lock()
	p := srttPlot{
		Title:     fmt.Sprintf("SRTT of %s's links, sampled by its watchdog every %v", short(watcher), samplePeriod),
		Threshold: threshold,
		Markers:   append([]plotMarker(nil), s.markers...),
		End:       time.Since(s.start),
	}
	peers := make([]string, 0, len(s.samples))
	for peer := range s.samples {
		peers = append(peers, peer)
	}
	slices.Sort(peers)
	for _, peer := range peers {
		p.Series = append(p.Series, plotSeries{Name: short(watcher) + " ↔ " + short(peer), Points: append([]plotPoint(nil), s.samples[peer]...)})
	}
	s.mu.Unlock()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := p.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveDebug serves node's debug page on o.debugAddr until the returned
// stop is called.
func serveDebug(o options, node *actors.Node, s *story) (stop func(), err error) {
	ln, err := net.Listen("tcp", o.debugAddr)
	if err != nil {
		return nil, fmt.Errorf("debug page: %w", err)
	}
	srv := &http.Server{Handler: node.DebugHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	url := "http://" + ln.Addr().String() + "/"
	s.say("debug", "%s's debug page: %s", node.Name(), url)
	if o.debugReady != nil {
		o.debugReady(url)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
