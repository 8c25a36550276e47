package actors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/actors/testkit"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
)

// debugJSON is the part of GET /peers the tests read
// (docs/observability.md, "The debug page's JSON").
type debugJSON struct {
	Node struct {
		Name        string `json:"name"`
		Incarnation string `json:"incarnation"`
		PublicKey   string `json:"public_key"`
		Address     string `json:"address"`
	} `json:"node"`
	TrafficCounted bool `json:"traffic_counted"`
	Membership     struct {
		Active  []string `json:"active"`
		Passive []string `json:"passive"`
	} `json:"membership"`
	Peers []struct {
		Name       string  `json:"name"`
		State      string  `json:"state"`
		Since      string  `json:"since"`
		Role       string  `json:"role"`
		SRTTMS     float64 `json:"srtt_ms"`
		ActiveView bool    `json:"active_view"`
		Messages   *struct {
			Sent     uint64 `json:"sent"`
			Received uint64 `json:"received"`
		} `json:"messages"`
		DeadLetters struct {
			Count uint64 `json:"count"`
		} `json:"dead_letters"`
		Migrations []struct {
			At    string `json:"at"`
			From  string `json:"from"`
			To    string `json:"to"`
			Error string `json:"error"`
		} `json:"migrations"`
		SRTT []struct {
			T      int64   `json:"t"`
			SRTTMS float64 `json:"srtt_ms"`
		} `json:"srtt"`
	} `json:"peers"`
}

// debugCluster starts three nodes that count their traffic, joins the
// second and third to the first's overlay, and spawns an echo actor on
// each.
func debugCluster(t *testing.T) *testkit.Cluster {
	t.Helper()
	c := testkit.NewCluster(t, 3, testkit.ClusterConfig{Node: actors.Config{
		Logger:     quiet,
		Dist:       dist.Config{CountTraffic: true},
		Membership: membership.Config{ShufflePeriod: time.Second},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range c.Nodes()[1:] {
		if err := n.Join(ctx, c.Node(0).Name()); err != nil {
			t.Fatalf("%s join: %v", n.Name(), err)
		}
	}
	for _, n := range c.Nodes() {
		if _, err := n.Root().SpawnNamed(actor.PropsFromFunc(func(ac actor.Context) {
			if m, ok := ac.Message().(*wrapperspb.Int64Value); ok {
				ac.Respond(m)
			}
		}), "echo"); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

var quiet = slog.New(slog.DiscardHandler)

// echoes sends count requests from node to every other node's echo actor.
func echoes(t *testing.T, c *testkit.Cluster, from int, count int) {
	t.Helper()
	for i, n := range c.Nodes() {
		if i == from {
			continue
		}
		for k := range count {
			pid := actor.NewPID(n.Name(), "echo")
			if _, err := c.Node(from).Root().RequestFuture(pid, wrapperspb.Int64(int64(k)), 5*time.Second).Result(); err != nil {
				t.Fatalf("echo %s: %v", n.Name(), err)
			}
		}
	}
}

func getPeers(t *testing.T, url string) (*debugJSON, int) {
	t.Helper()
	res, err := http.Get(url + "/peers")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return nil, res.StatusCode
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /peers Content-Type %q", ct)
	}
	var st debugJSON
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET /peers: %v\n%s", err, body)
	}
	return &st, res.StatusCode
}

// TestDebugHandlerJSON reads GET /peers of a three-node cluster: the
// node's identity in its one format, both peers connected with SRTT
// samples and message counts, the views, a migration with its addresses,
// and many requests at once.
func TestDebugHandlerJSON(t *testing.T) {
	c := debugCluster(t)
	a := c.Node(1) // dialed node 0: it may migrate that connection
	srv := httptest.NewServer(a.DebugHandler())
	defer srv.Close()
	echoes(t, c, 1, 20)
	if err := a.MigratePeer(context.Background(), c.Node(0).Name()); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	var st *debugJSON
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, _ = getPeers(t, srv.URL)
		ok := len(st.Peers) == 2
		for _, p := range st.Peers {
			ok = ok && len(p.SRTT) >= 2 && p.Messages != nil && p.Messages.Sent >= 20 && p.Messages.Received >= 20
			ok = ok && (p.Name != c.Node(0).Name() || len(p.Migrations) == 1)
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.Node.Name != a.Name() || st.Node.Incarnation != a.Incarnation().String() || st.Node.Address != a.Addr().String() || st.Node.PublicKey == "" {
		t.Errorf("node %+v; want name %s, incarnation %s, address %s", st.Node, a.Name(), a.Incarnation(), a.Addr())
	}
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(st.Node.Incarnation) {
		t.Errorf("incarnation %q is not in Incarnation.String's format", st.Node.Incarnation)
	}
	if !st.TrafficCounted {
		t.Error("traffic_counted false with Dist.CountTraffic set")
	}
	if len(st.Peers) != 2 {
		t.Fatalf("peers %+v, want the two other nodes", st.Peers)
	}
	for i, p := range st.Peers {
		want := c.Node([]int{0, 2}[i]).Name()
		if p.Name != want || p.State != "connected" || !p.ActiveView || p.SRTTMS <= 0 || p.Since == "" {
			t.Errorf("peer %d: %+v, want %s connected in the active view with an SRTT", i, p, want)
		}
		if len(p.SRTT) < 2 {
			t.Errorf("peer %s: %d SRTT samples, want at least 2", p.Name, len(p.SRTT))
		}
		if p.Messages == nil || p.Messages.Sent < 20 || p.Messages.Received < 20 {
			t.Errorf("peer %s: messages %+v, want at least 20 each way", p.Name, p.Messages)
		}
	}
	if got := st.Peers[0].Migrations; len(got) != 1 || got[0].From == got[0].To || got[0].Error != "" {
		t.Errorf("migrations of %s: %+v, want one successful, to a new address", st.Peers[0].Name, got)
	}
	if st.Peers[0].Role != "dialer" {
		t.Errorf("role toward %s %q, want dialer", st.Peers[0].Name, st.Peers[0].Role)
	}
	if !slices.Contains(st.Membership.Active, c.Node(0).Name()) {
		t.Errorf("active view %v, want %s in it (joined through it)", st.Membership.Active, c.Node(0).Name())
	}

	// Many readers at once.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := http.Get(srv.URL + "/peers")
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var st debugJSON
			if err := json.NewDecoder(res.Body).Decode(&st); err != nil || len(st.Peers) != 2 {
				errs <- fmt.Errorf("status %d, %d peers, %v", res.StatusCode, len(st.Peers), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error("concurrent GET /peers:", err)
	}
}

// TestDebugHandlerAssets: the page and its assets are served with their
// types and load nothing from elsewhere; unknown paths are 404, writes 405.
func TestDebugHandlerAssets(t *testing.T) {
	n := startQuietNode(t, "a@localhost")
	srv := httptest.NewServer(http.StripPrefix("/debug", n.DebugHandler()))
	defer srv.Close()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	for path, ctype := range map[string]string{
		"/debug/":          "text/html",
		"/debug/debug.js":  "text/javascript",
		"/debug/debug.css": "text/css",
	} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ctype)
		}
		if m := external.Find(body); m != nil {
			t.Errorf("GET %s loads from elsewhere: %q", path, m)
		}
	}
	for path, want := range map[string]int{"/debug/nope.txt": 404, "/debug/../go.mod": 404, "/debug/debugpage": 404} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, res.StatusCode, want)
		}
	}
	res, err := http.Post(srv.URL+"/debug/peers", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /peers: %d, want 405", res.StatusCode)
	}
}

// TestDebugHandlerStop: once the node stops the collector is gone (no
// goroutine left), the handler answers 503, and a DebugHandler called
// after Stop starts nothing.
func TestDebugHandlerStop(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	n := startQuietNode(t, "a@localhost")
	h := n.DebugHandler()
	srv := httptest.NewServer(h)
	if st, code := getPeers(t, srv.URL); code != http.StatusOK || st.Node.Name != "a@localhost" {
		t.Fatalf("GET /peers before Stop: %d %+v", code, st)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, code := getPeers(t, srv.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET /peers after Stop: %d, want 503", code)
	}
	later := httptest.NewServer(n.DebugHandler())
	if _, code := getPeers(t, later.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET /peers from a handler made after Stop: %d, want 503", code)
	}
	later.Close()
	srv.Close()
	http.DefaultClient.CloseIdleConnections()
	goleak.VerifyNone(t, baseline,
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1.1"))
}

func startQuietNode(t *testing.T, name string) *actors.Node {
	t.Helper()
	n, err := actors.Start(context.Background(), actors.Config{Name: name, Logger: quiet, OpenCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop() })
	return n
}

// chromiumPath finds the browser the page tests drive: CASK_CHROMIUM, or
// chromium on the PATH. Missing, the test fails (under CI and locally):
// the browser test is part of the suite.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CASK_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: .ci/run installs it (apt-get install -y chromium)")
	}
	t.Fatal("chromium is not installed; the debug page is tested in headless Chromium: apt-get install -y chromium (or set CASK_CHROMIUM to a Chromium binary)")
	return ""
}

// browser starts headless Chromium with a fresh profile; the context
// it returns has run once (the browser is up) and ends with the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// TestDebugPageInBrowser opens a three-node cluster's debug page in
// headless Chromium: it renders the node, shows both peers, and each
// peer's SRTT plot grows as samples arrive. With CASK_DEBUG_SCREENSHOT
// set to a file name it runs half a minute longer and saves a PNG of the
// page there (docs/img/debug-page.png).
func TestDebugPageInBrowser(t *testing.T) {
	browserCtx := browser(t)
	c := debugCluster(t)
	a := c.Node(1)
	srv := httptest.NewServer(a.DebugHandler()) // 127.0.0.1
	defer srv.Close()
	echoes(t, c, 1, 10)
	if err := a.MigratePeer(context.Background(), c.Node(0).Name()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 90*time.Second)
	defer cancel()

	peerSel := func(name string) string { return fmt.Sprintf(`.peer[data-name="%s"]`, name) }
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(peerSel(c.Node(0).Name()))),
		chromedp.WaitVisible(chromedp.CSS(peerSel(c.Node(2).Name()))),
	); err != nil {
		t.Fatalf("page did not render both peers: %v", err)
	}
	nodeName, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#node-name")))
	if err != nil || nodeName != a.Name() {
		t.Errorf("page shows node %q (%v), want %q", nodeName, err, a.Name())
	}
	cards, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('.peer')].map(e => e.dataset.name + ' ' + e.querySelector('.badge').textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{c.Node(0).Name() + " connected", c.Node(2).Name() + " connected"}
	if strings.Join(cards, ",") != strings.Join(want, ",") {
		t.Errorf("peer cards %q, want %q", cards, want)
	}
	dots, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#graph circle.peer-dot.active')].map(e => e.dataset.peer)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(dots, c.Node(0).Name()) {
		t.Errorf("graph shows the active peers %q, want %s among them", dots, c.Node(0).Name())
	}

	// The plot moves: the line's point count and its d attribute change
	// between two looks a few samples apart.
	type look struct {
		d      string
		points int
	}
	read := func(name string) look {
		sel := chromedp.CSS(peerSel(name) + ` path.srtt`)
		d, err1 := chromedp.Run(ctx, chromedp.AttributeValue(sel, "d"))
		pts, err2 := chromedp.Run(ctx, chromedp.AttributeValue(sel, "data-points"))
		if err1 != nil || err2 != nil || !d.Exists || !pts.Exists {
			t.Fatalf("read the SRTT plot of %s: %v, %v (d %v, points %v)", name, err1, err2, d.Exists, pts.Exists)
		}
		n, _ := strconv.Atoi(pts.Value)
		return look{d.Value, n}
	}
	for _, peer := range []string{c.Node(0).Name(), c.Node(2).Name()} {
		first := read(peer)
		var last look
		deadline := time.Now().Add(20 * time.Second)
		for {
			time.Sleep(500 * time.Millisecond)
			last = read(peer)
			if (last.points >= first.points+2 && last.d != first.d) || time.Now().After(deadline) {
				break
			}
		}
		if last.points < first.points+2 || last.d == first.d || !strings.HasPrefix(last.d, "M") {
			t.Errorf("SRTT plot of %s did not move: %d points %q, then %d points %q", peer, first.points, first.d, last.points, last.d)
		}
	}
	markers, err := chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll('`+peerSel(c.Node(0).Name())+` line.marker').length`))
	if err != nil {
		t.Fatal(err)
	}
	if markers != 1 {
		t.Errorf("SRTT plot of %s has %d migration markers, want 1", c.Node(0).Name(), markers)
	}

	if file := os.Getenv("CASK_DEBUG_SCREENSHOT"); file != "" {
		// Half a minute of history, with traffic, makes a better picture.
		for range 30 {
			echoes(t, c, 1, 5)
			time.Sleep(time.Second)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot in %s", file)
	}
}
