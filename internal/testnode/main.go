package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/membership"
)

// options are the command-line flags.
type options struct {
	name        string
	listen      string
	contact     string
	contactAddr string
	dataDir     string
	advertise   string
	shuffle     time.Duration
	idleTimeout time.Duration
	dns         bool
	logLevel    string
	pingTimeout time.Duration
	viewPoll    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.name, "name", "", "node name, name@host (required)")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:0", "UDP address to listen on")
	flag.StringVar(&o.contact, "contact", "", "node to join through, name@host (empty: none)")
	flag.StringVar(&o.contactAddr, "contact-addr", "", "the contact's UDP address, put in the static discovery map")
	flag.StringVar(&o.dataDir, "data-dir", "", "Config.DataDir (empty: an ephemeral identity)")
	flag.StringVar(&o.advertise, "advertise", "", "Config.AdvertiseAddr (empty: the bound address)")
	flag.DurationVar(&o.shuffle, "shuffle", 0, "membership shuffle period (0: the default)")
	flag.DurationVar(&o.idleTimeout, "idle-timeout", 0, "Config.Transport.IdleTimeout (0: the default)")
	flag.BoolVar(&o.dns, "dns", false, "enable DNS discovery")
	flag.StringVar(&o.logLevel, "log", "warn", "log level on stderr: debug, info, warn, error")
	flag.DurationVar(&o.pingTimeout, "ping-timeout", 5*time.Second, "timeout of the ping command")
	flag.DurationVar(&o.viewPoll, "view-poll", 100*time.Millisecond, "how often views are checked for a change")
	flag.Parse()
	out := &printer{w: bufio.NewWriter(os.Stdout)}
	if err := run(o, out); err != nil {
		out.print(map[string]any{"event": "error", "err": err.Error()})
		os.Exit(1)
	}
}

// printer writes one JSON object per line, from any goroutine.
type printer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *printer) print(ev map[string]any) {
	ev["t"] = time.Now().Format(time.RFC3339Nano)
	b, _ := json.Marshal(ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Write(append(b, '\n'))
	p.w.Flush()
}

func run(o options, out *printer) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("-log: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := actors.Config{Name: o.name, DataDir: o.dataDir, AdvertiseAddr: o.advertise, Logger: logger}
	cfg.Transport.ListenAddr = o.listen
	cfg.Transport.IdleTimeout = o.idleTimeout
	cfg.Dist.DisableDNS = !o.dns
	if o.contact != "" {
		cfg.Membership.ContactNodes = []string{o.contact}
		if o.contactAddr != "" {
			cfg.Dist.Peers = map[string]string{o.contact: o.contactAddr}
		}
	}
	cfg.Membership.ShufflePeriod = o.shuffle

	// Signals are caught before the node starts, so a SIGTERM sent right
	// after "started" is a graceful stop too.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	node, err := actors.Start(ctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	if _, err := node.Root().SpawnNamed(actor.PropsFromFunc(echo), "echo"); err != nil {
		node.Stop()
		return err
	}
	seq := newSequences(node)
	if _, err := node.Root().SpawnNamed(actor.PropsFromFunc(seq.count), "counter"); err != nil {
		node.Stop()
		return err
	}
	events := node.Root().Spawn(actor.PropsFromFunc(func(c actor.Context) { report(c, out) }))
	node.MonitorNode("", events)
	node.Subscribe(events)
	out.print(map[string]any{"event": "started", "node": node.Name(), "addr": node.Addr().String(),
		"incarnation": node.Incarnation().String(), "key": hex.EncodeToString(node.PublicKey())})

	stop := make(chan struct{}, 1)
	go commands(node, o, out, stop, seq)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchViews(node, o.viewPoll, out, done)
	}()
	select {
	case <-sigs:
	case <-stop:
	}
	close(done)
	wg.Wait()
	err = node.Stop()
	ev := map[string]any{"event": "stopped"}
	if err != nil {
		ev["err"] = err.Error()
	}
	out.print(ev)
	return nil
}

// echo answers every request with the message it got.
func echo(c actor.Context) {
	if m, ok := c.Message().(*wrapperspb.StringValue); ok && c.Sender() != nil {
		c.Respond(m)
	}
}

// report prints membership and dist events.
func report(c actor.Context, out *printer) {
	switch m := c.Message().(type) {
	case *membership.PeerUp:
		out.print(map[string]any{"event": "peer_up", "peer": m.Node})
	case *membership.PeerDown:
		out.print(map[string]any{"event": "peer_down", "peer": m.Node, "reason": string(m.Reason)})
	case *membership.Joined:
		out.print(map[string]any{"event": "joined", "peer": m.Contact})
	case *dist.NodeUp:
		out.print(map[string]any{"event": "node_up", "peer": m.Node, "incarnation": m.Incarnation.String()})
	case *dist.NodeDown:
		ev := map[string]any{"event": "node_down", "peer": m.Node, "reason": string(m.Reason)}
		if m.Err != nil {
			ev["err"] = m.Err.Error()
		}
		out.print(ev)
	case *dist.NodeUnreachable:
		ev := map[string]any{"event": "node_unreachable", "peer": m.Node}
		if m.Err != nil {
			ev["err"] = m.Err.Error()
		}
		out.print(ev)
	case *dist.NodeReachable:
		out.print(map[string]any{"event": "node_reachable", "peer": m.Node})
	}
}

// watchViews prints a "view" event whenever the active or passive view
// changed since the last check.
func watchViews(node *actors.Node, every time.Duration, out *printer, done <-chan struct{}) {
	var active, passive []string
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		a, p := node.ActiveView(), node.PassiveView()
		if !slices.Equal(a, active) || !slices.Equal(p, passive) {
			active, passive = a, p
			printViews(out, a, p)
		}
		select {
		case <-done:
			return
		case <-t.C:
		}
	}
}

func printViews(out *printer, active, passive []string) {
	out.print(map[string]any{"event": "view", "active": nonNil(active), "passive": nonNil(passive)})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// commands reads stdin until it ends; "stop" asks run to stop the node.
func commands(node *actors.Node, o options, out *printer, stop chan<- struct{}, seq *sequences) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch {
		case f[0] == "views":
			printViews(out, node.ActiveView(), node.PassiveView())
		case f[0] == "ping" && len(f) == 2:
			go ping(node, f[1], o.pingTimeout, out)
		case f[0] == "untrust" && len(f) == 2:
			ev := map[string]any{"event": "untrusted", "peer": f[1]}
			if err := node.UntrustPeer(f[1]); err != nil {
				ev["err"] = err.Error()
			}
			out.print(ev)
		case f[0] == "send" && len(f) == 3:
			n, err := strconv.Atoi(f[2])
			if err != nil {
				out.print(map[string]any{"event": "error", "err": fmt.Sprintf("send: %v", err)})
				continue
			}
			seq.send(f[1], n, out)
		case f[0] == "received":
			seq.printReceived(out)
		case f[0] == "tally" && len(f) == 2:
			seq.printTally(f[1], out)
		case f[0] == "stop":
			select {
			case stop <- struct{}{}:
			default:
			}
		default:
			out.print(map[string]any{"event": "error", "err": fmt.Sprintf("unknown command %q", sc.Text())})
		}
	}
}

func ping(node *actors.Node, peer string, timeout time.Duration, out *printer) {
	start := time.Now()
	_, err := node.Root().RequestFuture(actor.NewPID(peer, "echo"), wrapperspb.String("ping"), timeout).Result()
	ev := map[string]any{"event": "pong", "peer": peer, "ms": float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		ev["err"] = err.Error()
	}
	out.print(ev)
}

// sequences sends numbered messages (Int64Value 1, 2, 3, ...) to the
// "counter" actor of a peer, counts what its own counter receives, and
// counts the dead letters of the numbered messages it sent.
type sequences struct {
	node *actors.Node

	mu                   sync.Mutex
	sent                 map[string]int64 // peer → messages sent
	received, dups, back int64            // counter: received, duplicates, out of order
	last                 int64
	dead, ended          map[string]int64 // peer → dead letters, of which ErrSessionEnded
}

func newSequences(node *actors.Node) *sequences {
	s := &sequences{node: node, sent: map[string]int64{}, dead: map[string]int64{}, ended: map[string]int64{}}
	node.System().EventStream.Subscribe(func(ev any) {
		dl, ok := ev.(*actor.DeadLetterEvent)
		if !ok {
			return
		}
		um, ok := dl.Message.(*dist.UndeliveredMessage)
		if !ok {
			return
		}
		if _, ok := um.Message.(*wrapperspb.Int64Value); !ok {
			return
		}
		s.mu.Lock()
		s.dead[um.Node]++
		if errors.Is(um.Reason, dist.ErrSessionEnded) {
			s.ended[um.Node]++
		}
		s.mu.Unlock()
	})
	return s
}

// count is the "counter" actor: it checks that numbers arrive one after
// the other.
func (s *sequences) count(c actor.Context) {
	v, ok := c.Message().(*wrapperspb.Int64Value)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received++
	switch {
	case v.Value <= s.last:
		s.dups++
	case v.Value != s.last+1:
		s.back++
	}
	s.last = max(s.last, v.Value)
}

// send sends n more numbered messages to peer's counter, then prints a
// "sent" event with the total sent to peer.
func (s *sequences) send(peer string, n int, out *printer) {
	target := actor.NewPID(peer, "counter")
	s.mu.Lock()
	first := s.sent[peer] + 1
	s.sent[peer] += int64(n)
	total := s.sent[peer]
	s.mu.Unlock()
	for i := range int64(n) {
		s.node.Root().Send(target, wrapperspb.Int64(first+i))
	}
	out.print(map[string]any{"event": "sent", "peer": peer, "sent": total})
}

func (s *sequences) printReceived(out *printer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out.print(map[string]any{"event": "received", "received": s.received, "duplicates": s.dups, "reordered": s.back})
}

func (s *sequences) printTally(peer string, out *printer) {
	st := s.node.SessionStats(peer)
	s.mu.Lock()
	defer s.mu.Unlock()
	out.print(map[string]any{"event": "tally", "peer": peer, "sent": s.sent[peer], "dead_lettered": s.dead[peer],
		"session_ended": s.ended[peer], "unacknowledged": st.Unacknowledged, "stats_dead_lettered": st.DeadLettered})
}
