package dist

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Resolver finds the UDP addresses of a node by name. It is called on a
// connect goroutine, never on an actor, and may block until ctx is done
// (at most Config.ConnectTimeout). It returns ErrUnknownNode (wrapped)
// when it has no answer, so the next resolver in a chain is asked; any
// other error ends the lookup and fails the connect attempt with it.
//
// Connect errors say which source gave each address they tried: return
// *SourcedAddr elements to say it in your own words; a plain address is
// attributed by ChainResolver to the resolver's String method (when it
// is a fmt.Stringer) or its Go type.
type Resolver interface {
	Resolve(ctx context.Context, node string) ([]net.Addr, error)
}

// SourcedAddr is an address together with where discovery found it.
// Resolvers may return it in place of a plain address; the dist layer
// dials Addr and names Source in connect errors
// ("dns: localhost -> 127.0.0.1:4370 (default port): ...").
type SourcedAddr struct {
	net.Addr
	// Source reads "<source>: <what was looked up> -> <address>", with a
	// note in parentheses where the address is partly assumed.
	Source string
	// learned is the learned source's entry the address came from, so a
	// failed dial can let weaker news replace it; empty for others.
	learned string
}

// sourced wraps addrs found by source for key.
func sourced(source, key string, addrs []net.Addr, note string) []net.Addr {
	out := make([]net.Addr, len(addrs))
	for i, a := range addrs {
		src := source + ": " + key + " -> " + a.String()
		if note != "" {
			src += " (" + note + ")"
		}
		out[i] = &SourcedAddr{Addr: a, Source: src}
	}
	return out
}

// resolverName names r in connect errors: its String method if it has
// one, else its Go type.
func resolverName(r Resolver) string {
	if s, ok := r.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", r)
}

// unwrapAddr splits a resolved address into what to dial and where it
// came from ("" when the resolver did not say).
func unwrapAddr(a net.Addr) (net.Addr, string) {
	if s, ok := a.(*SourcedAddr); ok {
		return s.Addr, s.Source
	}
	return a, ""
}

// StaticResolver is a fixed map from node name to "ip:port".
type StaticResolver map[string]string

// Resolve implements Resolver.
func (s StaticResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	addr, ok := s[node]
	if !ok {
		return nil, fmt.Errorf("%w: %s not in static map", ErrUnknownNode, node)
	}
	addrs, err := resolveUDP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return sourced("static", node, addrs, ""), nil
}

// DirResolver reads endpoint files from a directory: the file <node> holds
// the node's "ip:port". Each node writes its own file with
// WriteEndpointFile.
type DirResolver struct{ Dir string }

// EndpointFileName is the file a node writes in a discovery directory.
func EndpointFileName(dir, node string) string {
	return filepath.Join(dir, node+".endpoint")
}

// Resolve implements Resolver.
func (d DirResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	b, err := os.ReadFile(EndpointFileName(d.Dir, node))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no endpoint file for %s in %s", ErrUnknownNode, node, d.Dir)
	}
	if err != nil {
		return nil, err
	}
	addrs, err := resolveUDP(ctx, strings.TrimSpace(string(b)))
	if err != nil {
		return nil, err
	}
	return sourced("dir", EndpointFileName(d.Dir, node), addrs, ""), nil
}

// WriteEndpointFile atomically writes node's address into dir.
func WriteEndpointFile(dir, node string, addr net.Addr) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".endpoint-*")
	if err != nil {
		return err
	}
	_, werr := tmp.WriteString(addr.String() + "\n")
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), EndpointFileName(dir, node))
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// RemoveEndpointFile removes node's endpoint file if it still names addr.
func RemoveEndpointFile(dir, node string, addr net.Addr) {
	path := EndpointFileName(dir, node)
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == addr.String() {
		os.Remove(path)
	}
}

// DNSResolver resolves the host part of name@host: first an SRV record
// _cask._udp.<host>, then A/AAAA records of <host> with Port.
type DNSResolver struct {
	Port     int
	Resolver *net.Resolver // nil means net.DefaultResolver
}

// Resolve implements Resolver.
func (d DNSResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	host := nodeHost(node)
	var out []net.Addr
	if _, srvs, err := r.LookupSRV(ctx, "cask", "udp", host); err == nil {
		for _, srv := range srvs {
			ips, err := r.LookupIPAddr(ctx, srv.Target)
			if err != nil {
				continue
			}
			for _, ip := range ips {
				a := &net.UDPAddr{IP: ip.IP, Zone: ip.Zone, Port: int(srv.Port)}
				out = append(out, sourced("dns", "SRV _cask._udp."+host, []net.Addr{a}, "")...)
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	ips, err := r.LookupIPAddr(ctx, host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("%w: DNS has no address for %s: %v", ErrUnknownNode, host, err)
	}
	for _, ip := range ips {
		out = append(out, &net.UDPAddr{IP: ip.IP, Zone: ip.Zone, Port: d.Port})
	}
	note := "DiscoveryPort"
	if d.Port == DefaultDiscoveryPort {
		note = "default port"
	}
	return sourced("dns", host, out, note), nil
}

// ChainResolver asks each resolver in turn; the first answer wins. A
// resolver failing with anything but ErrUnknownNode ends the chain. Every
// address it returns is a *SourcedAddr: plain ones are attributed to the
// resolver that gave them.
type ChainResolver []Resolver

// Resolve implements Resolver.
func (c ChainResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	var errs []error
	for _, r := range c {
		addrs, err := r.Resolve(ctx, node)
		if err == nil && len(addrs) > 0 {
			out := make([]net.Addr, len(addrs))
			for i, a := range addrs {
				if _, ok := a.(*SourcedAddr); !ok {
					a = sourced(resolverName(r), node, []net.Addr{a}, "")[0]
				}
				out[i] = a
			}
			return out, nil
		}
		if err != nil && !errors.Is(err, ErrUnknownNode) {
			return nil, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: %s: no discovery configured", ErrUnknownNode, node)
	}
	return nil, errors.Join(errs...)
}

func resolveUDP(ctx context.Context, hostport string) ([]net.Addr, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("dist: bad address %q: %w", hostport, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("dist: bad port in %q", hostport)
	}
	if ip := net.ParseIP(host); ip != nil {
		return []net.Addr{&net.UDPAddr{IP: ip, Port: port}}, nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("dist: resolve %q: %w", hostport, err)
	}
	out := make([]net.Addr, 0, len(ips))
	for _, ip := range ips {
		out = append(out, &net.UDPAddr{IP: ip.IP, Zone: ip.Zone, Port: port})
	}
	return out, nil
}

// AddrOrigin says how this node learned a peer's address. A higher origin
// replaces a lower one; a lower one replaces a higher one only after a
// dial to the address held failed.
type AddrOrigin int

// Address origins, weakest first.
const (
	// AddrGossip: a third party named the address in a membership message
	// received on an authenticated session.
	AddrGossip AddrOrigin = iota + 1
	// AddrObserved: the source address of an authenticated inbound
	// connection of the node, or an address this node dialed and
	// completed the dist handshake with.
	AddrObserved
	// AddrAdvertised: the node itself advertised the address (in its
	// dist hello or welcome, or as the sender of a membership message).
	AddrAdvertised
)

func (o AddrOrigin) String() string {
	switch o {
	case AddrGossip:
		return "gossip"
	case AddrObserved:
		return "observed"
	case AddrAdvertised:
		return "advertised"
	}
	return fmt.Sprintf("AddrOrigin(%d)", int(o))
}

// LearnedAddrs is the "learned" discovery source: the addresses of peers
// this node learned at run time, from membership messages and from
// authenticated connections, at most a fixed number of nodes (least
// recently used first out). A nil *LearnedAddrs (learning turned off)
// holds nothing and learns nothing. The discovery chain asks it after the static
// map and the endpoint directory and before DNS. Safe for use by many
// goroutines; it is owned by its Manager (Manager.LearnedAddrs).
type LearnedAddrs struct {
	max int

	mu      sync.Mutex
	entries map[string]*list.Element // node → *learnedAddr in lru
	lru     list.List                // front: most recently used
}

type learnedAddr struct {
	node   string
	addr   string
	origin AddrOrigin
	from   string // the node that told us (the node itself when first-hand)
	via    string // how: "hello", "welcome", "dial", "inbound connection", a membership message type
	// failed: a dial to addr failed since it was learned, so weaker news
	// may replace it.
	failed bool
}

// source says where the address came from, for errors and logs.
func (e *learnedAddr) source() string {
	return fmt.Sprintf("learned from %s via %s", e.from, e.via)
}

// NewLearnedAddrs returns an empty source that keeps at most max nodes
// (max < 1 means DefaultMaxLearnedAddrs).
func NewLearnedAddrs(max int) *LearnedAddrs {
	if max < 1 {
		max = DefaultMaxLearnedAddrs
	}
	return &LearnedAddrs{max: max, entries: make(map[string]*list.Element)}
}

// maxAddrLen bounds a learned address ("host:port").
const maxAddrLen = 300

// ValidAdvertiseAddr checks that addr is a dialable "host:port": a
// non-empty host that is not an unspecified IP (0.0.0.0, ::), and a port
// in 1..65535.
func ValidAdvertiseAddr(addr string) error {
	if len(addr) > maxAddrLen {
		return fmt.Errorf("address of %d bytes, more than %d", len(addr), maxAddrLen)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port, err := strconv.Atoi(portStr); err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("bad port in %q", addr)
	}
	if host == "" {
		return fmt.Errorf("no host in %q", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("%q is not dialable (unspecified IP)", addr)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '\\' }) {
		return fmt.Errorf("bad host in %q", addr)
	}
	return nil
}

// Learn records that node is reachable at addr, told by from (the node
// itself for first-hand news) via the named message or connection. It
// returns whether the entry changed. An address replaces the one held
// when its origin is at least as strong (a re-advertised address
// replaces the old one), or when a dial to the one held failed since it
// was learned. Invalid addresses (ValidAdvertiseAddr) and invalid node
// names are ignored.
func (l *LearnedAddrs) Learn(node, addr string, origin AddrOrigin, from, via string) bool {
	if l == nil || origin < AddrGossip || origin > AddrAdvertised || ValidateNodeName(node) != nil || ValidAdvertiseAddr(addr) != nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[node]; ok {
		e := el.Value.(*learnedAddr)
		switch {
		case e.addr == addr:
			// The same address again: fresh evidence.
			changed := origin > e.origin || (e.failed && origin >= AddrObserved)
			if origin >= e.origin {
				e.origin, e.from, e.via = origin, from, via
			}
			if origin >= AddrObserved {
				e.failed = false
			}
			l.lru.MoveToFront(el)
			return changed
		case origin >= e.origin || e.failed:
			*e = learnedAddr{node: node, addr: addr, origin: origin, from: from, via: via}
			l.lru.MoveToFront(el)
			return true
		}
		return false
	}
	l.entries[node] = l.lru.PushFront(&learnedAddr{node: node, addr: addr, origin: origin, from: from, via: via})
	for l.lru.Len() > l.max {
		old := l.lru.Back()
		delete(l.entries, old.Value.(*learnedAddr).node)
		l.lru.Remove(old)
	}
	return true
}

// Lookup returns the address held for node and where it came from.
func (l *LearnedAddrs) Lookup(node string) (addr, source string, ok bool) {
	if l == nil {
		return "", "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	el, ok := l.entries[node]
	if !ok {
		return "", "", false
	}
	e := el.Value.(*learnedAddr)
	return e.addr, e.source(), true
}

// Len is the number of nodes held.
func (l *LearnedAddrs) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// Resolve implements Resolver. The addresses it returns name their
// source, so a failed dial says where the address came from.
func (l *LearnedAddrs) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	if l == nil {
		return nil, fmt.Errorf("%w: learning addresses is off", ErrUnknownNode)
	}
	l.mu.Lock()
	el, ok := l.entries[node]
	var e learnedAddr
	if ok {
		l.lru.MoveToFront(el)
		e = *el.Value.(*learnedAddr)
	}
	l.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: no learned address for %s", ErrUnknownNode, node)
	}
	addrs, err := resolveUDP(ctx, e.addr)
	if err != nil {
		return nil, fmt.Errorf("%s (%s): %w", e.addr, e.source(), err)
	}
	for i, a := range addrs {
		addrs[i] = &SourcedAddr{Addr: a, Source: "learned: " + node + " -> " + a.String() + " (" + e.source() + ")", learned: e.addr}
	}
	return addrs, nil
}

// dialFailed notes that a dial to node's learned addr failed: weaker
// news may now replace it.
func (l *LearnedAddrs) dialFailed(node, addr string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.entries[node]; ok {
		if e := el.Value.(*learnedAddr); e.addr == addr {
			e.failed = true
		}
	}
}
