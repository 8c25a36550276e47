package adapter

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// relayMaxSessions bounds the clients one Relay serves; packets from further
// clients are dropped.
const relayMaxSessions = 1024

// relayBufferSize fits any UDP datagram.
const relayBufferSize = 64 << 10

// Relay is a small UDP forwarder, for tests and documentation on loopback.
// Each client 4-tuple gets its own upstream socket towards the target, so
// the target sees one distinct address per client and replies are sent
// back to the right client. Dial a peer "through" the relay by dialing
// Relay.Addr() instead of the peer's address.
//
// Sessions live until Close; there is no idle expiry.
type Relay struct {
	conn   *net.UDPConn
	target *net.UDPAddr

	mu       sync.Mutex
	sessions map[string]*relaySession // by client address; guarded by mu
	closed   bool                     // guarded by mu
	wg       sync.WaitGroup
	once     sync.Once
}

type relaySession struct {
	client   net.Addr
	upstream *net.UDPConn
}

// NewRelay listens on listenAddr (empty means DefaultListenAddr) and
// forwards to target. The relay runs until Close.
func NewRelay(listenAddr string, target net.Addr) (*Relay, error) {
	if target == nil {
		return nil, errors.New("adapter: relay needs a target address")
	}
	targetUDP, err := net.ResolveUDPAddr("udp", target.String())
	if err != nil {
		return nil, fmt.Errorf("adapter: relay target %s: %w", target, err)
	}
	conn, err := listenUDP(listenAddr)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		conn:     conn,
		target:   targetUDP,
		sessions: make(map[string]*relaySession),
	}
	r.wg.Add(1)
	go r.serveClients()
	return r, nil
}

// Addr returns the address clients send to.
func (r *Relay) Addr() net.Addr { return r.conn.LocalAddr() }

// Close stops the relay, closes every socket and waits for its goroutines.
// It is safe to call more than once.
func (r *Relay) Close() error {
	var err error
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		sessions := r.sessions
		r.sessions = nil
		r.mu.Unlock()
		err = r.conn.Close()
		for _, s := range sessions {
			_ = s.upstream.Close()
		}
		r.wg.Wait()
	})
	return err
}

// serveClients reads from clients and forwards upstream.
func (r *Relay) serveClients() {
	defer r.wg.Done()
	buf := make([]byte, relayBufferSize)
	for {
		n, client, err := r.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s := r.session(client)
		if s == nil {
			continue
		}
		_, _ = s.upstream.WriteTo(buf[:n], r.target)
	}
}

// session returns the client's session, creating it (and its upstream
// socket and reader) on first contact. Nil means drop the packet.
func (r *Relay) session(client net.Addr) *relaySession {
	key := client.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if s, ok := r.sessions[key]; ok {
		return s
	}
	if len(r.sessions) >= relayMaxSessions {
		return nil
	}
	local := &net.UDPAddr{}
	if la, ok := r.conn.LocalAddr().(*net.UDPAddr); ok && !la.IP.IsUnspecified() {
		local.IP = la.IP
	}
	up, err := net.ListenUDP("udp", local)
	if err != nil {
		return nil
	}
	s := &relaySession{client: client, upstream: up}
	r.sessions[key] = s
	r.wg.Add(1)
	go r.serveUpstream(s)
	return s
}

// serveUpstream copies the target's replies back to one client.
func (r *Relay) serveUpstream(s *relaySession) {
	defer r.wg.Done()
	buf := make([]byte, relayBufferSize)
	for {
		n, _, err := s.upstream.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		_, _ = r.conn.WriteTo(buf[:n], s.client)
	}
}
