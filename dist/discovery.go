package dist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
