// The dist handshake, both roles, and dialing.
//
// Dialer: dial resolves the peer through the discovery chain, dials each
// address (from the socket SetConnectOptions named, if any), and
// handshakeOutbound sends DistHello on a new control stream and reads
// DistWelcome. Both sides learn the peer's address once its identity is
// proved (learnFromPeer): the one it advertised in its hello or welcome,
// else the source address of the connection or the address dialed. Acceptor: acceptLoop takes authenticated connections from
// the transport; handshakeInbound reads and checks DistHello and hands it
// to the peer's controller as inboundHello; the controller settles
// simultaneous connects and accepts with writeWelcome. The inbound
// connection counts against transport.Config.MaxPendingHandshakes until
// its hello is read and checked (Conn.Admitted).
//
// Ownership: each handshake runs on its own goroutine counted by
// Manager.wg and owns its connection until it reports to the controller
// (dialResult, inboundHello); nothing here touches controller state.

package dist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
	"github.com/cask-p2p/cask/transport/identity"
	"google.golang.org/protobuf/proto"
)

// acceptLoop takes authenticated connections from the transport and runs
// the dist handshake on each in its own goroutine.
func (m *Manager) acceptLoop() {
	defer m.wg.Done()
	for {
		conn, err := m.tr.Accept(m.ctx)
		if err != nil {
			if m.ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				m.log.Error("accept failed", "err", err)
			}
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.handshakeInbound(conn)
		}()
	}
}

const maxHandshakeFrame = 64 << 10

func (m *Manager) handshakeInbound(conn *transport.Conn) {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.ConnectTimeout)
	defer cancel()
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		m.log.Warn("inbound connection sent no control stream", "remote", conn.RemoteAddr(), "err", err)
		conn.CloseWithError(transport.CodeHandshakeFailed, "no control stream")
		return
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetReadDeadline(deadline)
	br := bufio.NewReaderSize(ctrl, 16<<10)
	frame, err := transport.ReadFrame(br, nil, maxHandshakeFrame)
	var hello caskpb.DistHello
	if err == nil {
		err = proto.Unmarshal(frame, &hello)
	}
	if err != nil {
		m.log.Warn("bad dist hello", "remote", conn.RemoteAddr(), "err", err)
		m.reject(conn, ctrl, caskpb.RejectReason_REJECT_REASON_BAD_HELLO, err.Error())
		return
	}
	ctrl.SetReadDeadline(time.Time{})
	peer := hello.GetNode()
	reason, detail := m.checkHello(&hello, conn)
	if reason != caskpb.RejectReason_REJECT_REASON_UNSPECIFIED {
		m.log.Warn("rejected dist hello", "peer", peer, "remote", conn.RemoteAddr(), "reason", reason, "detail", detail)
		m.reject(conn, ctrl, reason, detail)
		return
	}
	// The transport counted the connection as a pending handshake until
	// now (a peer that never sends its hello holds a slot only until
	// ConnectTimeout, and can be evicted by newcomers meanwhile).
	conn.Admitted()
	m.learnFromPeer(peer, hello.GetAdvertiseAddr(), "hello", conn.RemoteAddr(), "inbound connection")
	m.system.Root.Send(m.pid, &inboundHello{conn: conn, controlStream: ctrl, controlReader: br, hello: &hello})
}

func (m *Manager) checkHello(h *caskpb.DistHello, conn *transport.Conn) (caskpb.RejectReason, string) {
	switch {
	case m.stopping.Load():
		return caskpb.RejectReason_REJECT_REASON_SHUTTING_DOWN, "node is stopping"
	case ValidateNodeName(h.GetNode()) != nil || h.GetNode() == m.name:
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, fmt.Sprintf("bad node name %q", h.GetNode())
	case h.GetToNode() != m.name:
		return caskpb.RejectReason_REJECT_REASON_WRONG_NODE, fmt.Sprintf("this is %s, not %s", m.name, h.GetToNode())
	case h.GetIncarnation() == 0:
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, "zero incarnation"
	}
	if id := conn.Identity().Node; id != "" && id != h.GetNode() {
		return caskpb.RejectReason_REJECT_REASON_BAD_HELLO, fmt.Sprintf("authenticated as %s but says %s", id, h.GetNode())
	}
	if _, ok := negotiateVersion(h.GetMinVersion(), h.GetMaxVersion()); !ok {
		return caskpb.RejectReason_REJECT_REASON_VERSION, fmt.Sprintf("peer speaks %d..%d, this node %d..%d",
			h.GetMinVersion(), h.GetMaxVersion(), MinProtocolVersion, MaxProtocolVersion)
	}
	return caskpb.RejectReason_REJECT_REASON_UNSPECIFIED, ""
}

func negotiateVersion(lo, hi uint32) (uint32, bool) {
	v := min(hi, uint32(MaxProtocolVersion))
	if v < max(lo, uint32(MinProtocolVersion)) {
		return 0, false
	}
	return v, true
}

func (m *Manager) capabilities() uint64 {
	caps := uint64(1) << caskpb.Capability_CAPABILITY_USER_STREAMS
	if !m.withoutLinks {
		caps |= 1 << caskpb.Capability_CAPABILITY_LINKS
	}
	if !m.withoutStreamCredit {
		caps |= 1 << caskpb.Capability_CAPABILITY_STREAM_CREDIT
	}
	if !m.cfg.DisableMigration {
		caps |= 1 << caskpb.Capability_CAPABILITY_MIGRATION
	}
	if !m.withoutSessions {
		caps |= 1 << caskpb.Capability_CAPABILITY_SESSIONS
	}
	return caps
}

// reject answers a hello with a refusal and closes the connection once the
// dialer has read it (or after a short grace).
func (m *Manager) reject(conn *transport.Conn, ctrl *transport.Stream, reason caskpb.RejectReason, detail string) {
	b, _ := proto.Marshal(&caskpb.DistWelcome{Accepted: false, Reason: reason, Detail: detail, Node: m.name})
	ctrl.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := ctrl.Write(transport.AppendFrame(nil, b)); err == nil {
		ctrl.Close()
		select {
		case <-conn.Context().Done():
		case <-time.After(time.Second):
		case <-m.ctx.Done():
		}
	}
	conn.CloseWithError(transport.CodeHandshakeFailed, "dist handshake rejected: "+reason.String())
}

// writeWelcome accepts an inbound connection: DistWelcome is the first
// frame of s's control writer, so it reaches the dialer before any other
// control frame of the session.
// resumed says whether it resumes the session the hello named; the
// welcome then carries this node's receive positions.
func (m *Manager) writeWelcome(s *session, h *caskpb.DistHello, resumed bool) {
	version, _ := negotiateVersion(h.GetMinVersion(), h.GetMaxVersion())
	w := &caskpb.DistWelcome{
		Accepted: true, Node: m.name, Incarnation: uint64(m.inc), Version: version, Capabilities: m.capabilities(),
		MaxMessageSize: uint32(m.cfg.MaxMessageSize), AdvertiseAddr: m.advertise,
	}
	if !m.withoutSessions {
		w.SessionId = s.state.localID
	}
	if resumed {
		w.Resumed, w.Received = true, s.state.positions()
	}
	welcome, _ := proto.Marshal(w)
	cw := s.controlWriter
	cw.lock()
	cw.buf = transport.AppendFrame(cw.buf, welcome)
	cw.unlockAndSignal()
}

// dialResult is what a connect goroutine reports to its controller.
type dialResult struct {
	seq           uint64
	offer         *resumeOffer
	conn          *transport.Conn
	controlStream *transport.Stream
	controlReader *bufio.Reader
	welcome       *caskpb.DistWelcome
	err           error
}

// resumeOffer is what a dialer's hello says about its session with the
// peer: its own id (a new one when there is no session) and, to resume,
// the peer's id and the state whose positions it reports.
type resumeOffer struct {
	localID  uint64
	remoteID uint64
	state    *sessionState // nil: nothing to resume
	handover bool          // MigratePeer moves the live session (migrate.go)
}

func (o *resumeOffer) fill(h *caskpb.DistHello) {
	if o == nil {
		return
	}
	h.SessionId = o.localID
	if o.state != nil {
		h.ResumeSessionId, h.Received, h.Handover = o.remoteID, o.state.positions(), o.handover
	}
}

// dial resolves node, dials its addresses in turn and runs the dist
// handshake as the dialer. With via set, the connection is dialed from
// that socket (a handover, migrate.go) instead of the usual one.
func (m *Manager) dial(ctx context.Context, node string, offer *resumeOffer, via transport.SocketAdapter) *dialResult {
	addrs, err := m.resolver.Resolve(ctx, node)
	if err != nil {
		return &dialResult{err: err}
	}
	var conn *transport.Conn
	var dialed net.Addr
	var errs []error
	for _, found := range addrs {
		addr, source := unwrapAddr(found)
		var learnedFrom string
		if s, ok := found.(*SourcedAddr); ok {
			learnedFrom = s.learned
		}
		// The identity handshake refuses a peer that is not node before
		// trusting any key of it.
		if via != nil {
			conn, err = m.tr.DialVia(identity.WithExpectedPeer(ctx, node), addr, via)
		} else {
			conn, err = m.dialAddr(identity.WithExpectedPeer(ctx, node), node, addr)
		}
		if err == nil {
			dialed = addr
			break
		}
		if learnedFrom != "" {
			// Weaker news about node may now replace this address.
			m.learned.dialFailed(node, learnedFrom)
		}
		errs = append(errs, &addrError{addr: addr, source: source, err: err})
	}
	if conn == nil {
		return &dialResult{err: fmt.Errorf("%w: %w", ErrConnectFailed, errors.Join(errs...))}
	}
	res, err := m.handshakeOutbound(ctx, conn, node, offer)
	if err != nil {
		conn.CloseWithError(transport.CodeHandshakeFailed, err.Error())
		return &dialResult{err: err}
	}
	if res.err == nil {
		m.learnFromPeer(node, res.welcome.GetAdvertiseAddr(), "welcome", dialed, "dial")
	}
	return res
}

// learnFromPeer records the address of a peer that just completed the
// identity handshake (so it is authenticated): the address it advertised
// (first-hand), else the address seen on the connection.
func (m *Manager) learnFromPeer(peer, advertised, advertisedVia string, seen net.Addr, seenVia string) {
	if advertised != "" && m.learned.Learn(peer, advertised, AddrAdvertised, peer, advertisedVia) {
		m.log.Debug("learned address", "peer", peer, "addr", advertised, "via", advertisedVia)
		return
	}
	if advertised == "" && seen != nil && m.learned.Learn(peer, seen.String(), AddrObserved, peer, seenVia) {
		m.log.Debug("learned address", "peer", peer, "addr", seen.String(), "via", seenVia)
	}
}

// ConnectOptions are per-peer settings for connects this node makes to
// one peer (Manager.SetConnectOptions).
type ConnectOptions struct {
	// Adapter opens the socket the connection is dialed from instead of
	// the node's shared socket, e.g. adapter.Relayed to reach the
	// peer through a relay. Nil means the shared socket.
	Adapter transport.SocketAdapter
}

// SetConnectOptions sets the options used by every connect to node from
// now on: the next one, and any reconnect after it. A live session is not
// touched (migrate it with MigratePeer instead). Zero options remove the
// setting.
func (m *Manager) SetConnectOptions(node string, opts ConnectOptions) error {
	if err := ValidateNodeName(node); err != nil {
		return peerErr("connect options", node, err)
	}
	if opts.Adapter == nil {
		m.connectOptions.Delete(node)
		return nil
	}
	m.connectOptions.Store(node, opts)
	return nil
}

// dialAddr dials one of node's addresses, from the socket its
// ConnectOptions name, if any.
func (m *Manager) dialAddr(ctx context.Context, node string, addr net.Addr) (*transport.Conn, error) {
	if v, ok := m.connectOptions.Load(node); ok {
		if o := v.(ConnectOptions); o.Adapter != nil {
			return m.tr.DialVia(ctx, addr, o.Adapter)
		}
	}
	return m.tr.Dial(ctx, addr)
}

func (m *Manager) handshakeOutbound(ctx context.Context, conn *transport.Conn, node string, offer *resumeOffer) (*dialResult, error) {
	if id := conn.Identity().Node; id != "" && id != node {
		return nil, fmt.Errorf("%w: authenticated peer is %s", ErrConnectFailed, id)
	}
	ctrl, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: open control stream: %w", ErrConnectFailed, err)
	}
	deadline, _ := ctx.Deadline()
	ctrl.SetDeadline(deadline)
	hello := &caskpb.DistHello{
		Node: m.name, Incarnation: uint64(m.inc), MinVersion: MinProtocolVersion, MaxVersion: MaxProtocolVersion,
		Capabilities: m.capabilities(), ToNode: node, MaxMessageSize: uint32(m.cfg.MaxMessageSize),
		AdvertiseAddr: m.advertise,
	}
	if !m.withoutSessions {
		offer.fill(hello)
	}
	b, _ := proto.Marshal(hello)
	if _, err := ctrl.Write(transport.AppendFrame(nil, b)); err != nil {
		return nil, fmt.Errorf("%w: write hello: %w", ErrConnectFailed, err)
	}
	br := bufio.NewReaderSize(ctrl, 16<<10)
	frame, err := transport.ReadFrame(br, nil, maxHandshakeFrame)
	if err != nil {
		return nil, fmt.Errorf("%w: read welcome: %w", ErrConnectFailed, err)
	}
	var w caskpb.DistWelcome
	if err := proto.Unmarshal(frame, &w); err != nil {
		return nil, fmt.Errorf("%w: %w: welcome: %v", ErrConnectFailed, ErrProtocol, err)
	}
	if !w.GetAccepted() {
		err := fmt.Errorf("%w: %s: %s", ErrRejected, w.GetReason(), w.GetDetail())
		if w.GetReason() == caskpb.RejectReason_REJECT_REASON_TOO_MANY_PEERS {
			err = fmt.Errorf("%w: %w: %s", ErrRejected, ErrTooManyPeers, w.GetDetail())
		}
		return &dialResult{conn: conn, welcome: &w, err: err}, nil
	}
	if w.GetNode() != node {
		return nil, fmt.Errorf("%w: welcome from %q", ErrConnectFailed, w.GetNode())
	}
	if v := w.GetVersion(); v < MinProtocolVersion || v > MaxProtocolVersion {
		return nil, fmt.Errorf("%w: peer chose version %d", ErrConnectFailed, v)
	}
	if w.GetIncarnation() == 0 {
		return nil, fmt.Errorf("%w: zero incarnation", ErrConnectFailed)
	}
	ctrl.SetDeadline(time.Time{})
	return &dialResult{conn: conn, controlStream: ctrl, controlReader: br, welcome: &w}, nil
}

// addrString formats an address for logs.
func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// addrError is a failed dial of one of a peer's addresses; source says
// where discovery found it (SourcedAddr), when known.
type addrError struct {
	addr   net.Addr
	source string
	err    error
}

func (e *addrError) Error() string {
	where := e.source
	if where == "" {
		where = e.addr.String()
	}
	return where + ": " + bare(e.err.Error())
}
func (e *addrError) Unwrap() error { return e.err }
