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
// connect goroutine, never on an actor, and may block until ctx is done.
// It returns ErrUnknownNode (wrapped) when it has no answer, so the next
// resolver in a chain is asked.
type Resolver interface {
	Resolve(ctx context.Context, node string) ([]net.Addr, error)
}

// StaticResolver is a fixed map from node name to "ip:port".
type StaticResolver map[string]string

// Resolve implements Resolver.
func (s StaticResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	addr, ok := s[node]
	if !ok {
		return nil, fmt.Errorf("%w: %s not in static map", ErrUnknownNode, node)
	}
	return resolveUDP(ctx, addr)
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
	return resolveUDP(ctx, strings.TrimSpace(string(b)))
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
				out = append(out, &net.UDPAddr{IP: ip.IP, Zone: ip.Zone, Port: int(srv.Port)})
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
	return out, nil
}

// ChainResolver asks each resolver in turn; the first answer wins. A
// resolver failing with anything but ErrUnknownNode ends the chain.
type ChainResolver []Resolver

// Resolve implements Resolver.
func (c ChainResolver) Resolve(ctx context.Context, node string) ([]net.Addr, error) {
	var errs []error
	for _, r := range c {
		addrs, err := r.Resolve(ctx, node)
		if err == nil && len(addrs) > 0 {
			return addrs, nil
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
