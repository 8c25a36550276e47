package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

type transportState int

const (
	stateNew transportState = iota
	stateStarted
	stateClosed
)

// Transport is a node's QUIC endpoint: one socket, one quic.Transport shared
// by the listener and every dialed connection.
type Transport struct {
	cfg Config

	quicConf  *quic.Config
	clientTLS *tls.Config

	// accepted hands authenticated inbound conns to Accept.
	accepted chan *Conn

	mu    sync.Mutex
	state transportState
	conns map[*Conn]struct{} // live conns, dialed and accepted; guarded by mu
	// Admission of inbound conns (admission.go); guarded by mu.
	pending admissions
	// Set by Start, read-only afterwards.
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	pc     net.PacketConn
	qt     *quic.Transport
	ln     *quic.Listener
	cert   tls.Certificate
	closed chan struct{}

	wg sync.WaitGroup // every goroutine this Transport started
}

// New validates cfg and fills its defaults. It has no side effects: no
// socket or file is touched before Start.
func New(cfg Config) (*Transport, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("transport: invalid config: %w", err)
	}
	t := &Transport{
		cfg: cfg,
		quicConf: &quic.Config{
			HandshakeIdleTimeout:           cfg.HandshakeTimeout,
			MaxIdleTimeout:                 cfg.IdleTimeout,
			KeepAlivePeriod:                cfg.KeepAlivePeriod,
			MaxIncomingStreams:             cfg.MaxIncomingStreams,
			MaxIncomingUniStreams:          cfg.MaxIncomingUniStreams,
			InitialStreamReceiveWindow:     InitialStreamReceiveWindow,
			MaxStreamReceiveWindow:         MaxStreamReceiveWindow,
			InitialConnectionReceiveWindow: InitialConnectionReceiveWindow,
			MaxConnectionReceiveWindow:     MaxConnectionReceiveWindow,
		},
		clientTLS: clientTLSConfig(),
		accepted:  make(chan *Conn),
		conns:     make(map[*Conn]struct{}),
		pending:   newAdmissions(cfg.MaxPendingHandshakes),
		closed:    make(chan struct{}),
	}
	if cfg.QlogDir != "" {
		t.quicConf.Tracer = t.qlogTracer()
	}
	return t, nil
}

// Config returns the effective configuration (defaults filled in).
func (t *Transport) Config() Config { return t.cfg }

// Start loads or creates the TLS material, opens the socket and starts
// listening. It may be called once; after Close it returns ErrClosed.
func (t *Transport) Start() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case stateStarted:
		return errors.New("transport: already started")
	case stateClosed:
		return ErrClosed
	}
	if dir := t.cfg.QlogDir; dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("transport: QlogDir: %w", err)
		}
	}
	cert, err := loadOrCreateCertificate(t.cfg.DataDir)
	if err != nil {
		return err
	}
	resetKey, err := statelessResetKey(cert)
	if err != nil {
		return err
	}
	pc, err := t.cfg.Adapter.Open()
	if err != nil {
		return fmt.Errorf("transport: open socket: %w", err)
	}
	srk := quic.StatelessResetKey(resetKey)
	qt := &quic.Transport{Conn: pc, StatelessResetKey: &srk}
	ln, err := qt.Listen(serverTLSConfig(cert), t.quicConf)
	if err != nil {
		_ = qt.Close()
		_ = pc.Close()
		return fmt.Errorf("transport: listen: %w", convertErr(err))
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.pc, t.qt, t.ln, t.cert = pc, qt, ln, cert
	t.state = stateStarted
	t.wg.Add(1)
	go t.acceptLoop()
	t.cfg.Logger.Debug("transport: listening", "addr", pc.LocalAddr().String())
	return nil
}

// Addr is the local listen address; nil before Start.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pc == nil {
		return nil
	}
	return t.pc.LocalAddr()
}

// started returns an error unless Start succeeded and Close was not called.
func (t *Transport) started() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.state {
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	return nil
}

// Dial connects to addr: QUIC handshake, then the Authenticator in the
// dialer role, both within Config.HandshakeTimeout. It runs on the caller's
// goroutine.
func (t *Transport) Dial(ctx context.Context, addr net.Addr) (*Conn, error) {
	if addr == nil {
		return nil, errors.New("transport: dial: nil address")
	}
	if err := t.started(); err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	hctx, cancel := context.WithTimeoutCause(ctx, t.cfg.HandshakeTimeout, errHandshakeTimeout)
	defer cancel()
	qc, err := t.qt.Dial(hctx, addr, t.clientTLS, t.quicConf)
	if err != nil {
		if ctx.Err() == nil && hctx.Err() != nil {
			err = context.Cause(hctx)
		}
		return nil, fmt.Errorf("transport: dial %s: %w", addr, convertErr(err))
	}
	c, err := t.register(qc, RoleDialer)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	id, err := t.authenticate(hctx, c)
	if err != nil {
		if ctx.Err() == nil && hctx.Err() != nil {
			err = fmt.Errorf("%w: %w", context.Cause(hctx), err)
		}
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	c.identity = id
	return c, nil
}

// errHandshakeTimeout is the cause of a handshake context that expired.
var errHandshakeTimeout = fmt.Errorf("%w: handshake (QUIC + authentication) took longer than HandshakeTimeout", ErrIdleTimeout)

// Accept returns the next inbound connection that passed the
// Authenticator. The connection still counts as a pending handshake until
// the caller calls its Admitted method (or closes it). It returns ErrClosed after Close and ctx's error when ctx
// is done first.
func (t *Transport) Accept(ctx context.Context) (*Conn, error) {
	if err := t.started(); err != nil {
		return nil, err
	}
	select {
	case c := <-t.accepted:
		return c, nil
	case <-t.closed:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// acceptLoop takes QUIC-handshaken conns from the listener, admits each
// into the pending set (admission.go), which may evict another pending
// conn or refuse this one, and starts one authentication goroutine per
// admitted conn.
func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	for {
		qc, err := t.ln.Accept(t.ctx)
		if err != nil {
			return // listener closed or Close called
		}
		c, err := t.register(qc, RoleAcceptor)
		if err != nil {
			return // closed
		}
		// Closing waits for the connection's loop to end: do it off this
		// goroutine, which must keep quic-go's accept queue short (when
		// it is full quic-go refuses every new connection, honest or not).
		evicted, ok := t.admit(c)
		if evicted != nil {
			t.closeInBackground(evicted, "evicted: too many pending handshakes")
		}
		if !ok {
			t.closeInBackground(c, "too many pending handshakes")
			continue
		}
		t.wg.Add(1)
		go t.handleInbound(c)
	}
}

// closeInBackground closes c with CodeTooManyHandshakes on a goroutine of
// its own.
func (t *Transport) closeInBackground(c *Conn, reason string) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		_ = c.CloseWithError(CodeTooManyHandshakes, reason)
	}()
}

// handleInbound authenticates one inbound conn and hands it to Accept. The
// conn stays pending until its owner calls Conn.Admitted or it ends.
func (t *Transport) handleInbound(c *Conn) {
	defer t.wg.Done()
	hctx, cancel := context.WithTimeoutCause(t.ctx, t.cfg.HandshakeTimeout, errHandshakeTimeout)
	stopFirstStream := t.firstStreamDeadline(c)
	id, err := t.authenticate(hctx, c)
	stopFirstStream()
	cancel()
	if err != nil {
		return // logged and closed by authenticate
	}
	c.identity = id
	select {
	case t.accepted <- c:
	case <-c.ctx.Done():
	case <-t.ctx.Done():
		_ = c.CloseWithError(CodeShutdown, "transport closed")
	}
}

// firstStreamDeadline closes c with CodeHandshakeFailed unless its peer
// opens a stream (the Authenticator's) within Config.FirstStreamTimeout.
// It applies only while an Authenticator runs and when FirstStreamTimeout
// is shorter than HandshakeTimeout. The returned func disarms it and
// waits for a close in progress.
func (t *Transport) firstStreamDeadline(c *Conn) (stop func()) {
	d := t.cfg.FirstStreamTimeout
	if t.cfg.Authenticator == nil || d >= t.cfg.HandshakeTimeout {
		return func() {}
	}
	fired := make(chan struct{})
	timer := time.AfterFunc(d, func() {
		defer close(fired)
		if !c.peerOpenedStream.Load() {
			_ = c.CloseWithError(CodeHandshakeFailed, "no identity handshake within FirstStreamTimeout")
		}
	})
	return func() {
		if !timer.Stop() {
			<-fired
		}
	}
}

// register wraps qc in a Conn, records it so Close closes it, and starts
// the goroutine that forgets it when it ends.
func (t *Transport) register(qc *quic.Conn, role Role) (*Conn, error) {
	c := newConn(qc, role, &t.cfg)
	if role == RoleAcceptor {
		c.admitter = t
	}
	t.mu.Lock()
	if t.state == stateClosed {
		t.mu.Unlock()
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeShutdown), "transport closed")
		return nil, ErrClosed
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		c.watch()
		t.mu.Lock()
		delete(t.conns, c)
		t.pending.remove(c)
		t.mu.Unlock()
	}()
	return c, nil
}

// authenticate checks the ALPN and runs the Authenticator under hctx. If
// hctx ends first the conn is closed, which unblocks the Authenticator's
// stream operations. On failure the conn is closed with a code and reason,
// the failure is logged, and the error returned.
func (t *Transport) authenticate(hctx context.Context, c *Conn) (Identity, error) {
	if got := c.negotiatedALPN(); got != ALPN {
		err := fmt.Errorf("%w: peer negotiated ALPN %q, want %q", ErrHandshake, got, ALPN)
		c.logger.Warn("transport: handshake failed", "err", err)
		_ = c.CloseWithError(CodeHandshakeFailed, "wrong ALPN")
		return Identity{}, err
	}
	if t.cfg.Authenticator == nil {
		return Identity{}, nil
	}
	expired := make(chan struct{})
	stop := context.AfterFunc(hctx, func() {
		defer close(expired)
		closeOnContextEnd(hctx, c)
	})
	id, err := t.cfg.Authenticator.Authenticate(hctx, c, c.role)
	if !stop() {
		<-expired
	}
	if hctx.Err() != nil {
		// The Authenticator may have returned before the AfterFunc ran.
		closeOnContextEnd(hctx, c)
		if err == nil {
			err = context.Cause(hctx)
		}
	}
	if err == nil && c.ctx.Err() != nil {
		err = context.Cause(c.ctx) // the conn died under a successful Authenticator
	}
	if err != nil {
		err = fmt.Errorf("transport: authenticate: %w", err)
		logger := c.logger
		if pe := peerNamer(nil); errors.As(err, &pe) && pe.PeerName() != "" {
			logger = logger.With("peer", pe.PeerName())
		}
		if sl := selfLogger(nil); errors.As(err, &sl) && sl.Logged() {
			logger.Debug("transport: authentication failed", "err", err)
		} else {
			logger.Warn("transport: authentication failed", "err", err)
		}
		_ = c.CloseWithError(CodeAuthFailed, truncateReason(err.Error()))
		return Identity{}, err
	}
	return id, nil
}

// peerNamer is an Authenticator error that names the peer it is about
// (see Authenticator).
type peerNamer interface{ PeerName() string }

// selfLogger is an Authenticator error that the Authenticator logged itself
// (see Authenticator).
type selfLogger interface{ Logged() bool }

// closeOnContextEnd closes c because its handshake context ended: timed out
// (CodeHandshakeFailed) or cancelled by Close or the dialer's caller
// (CodeShutdown).
func closeOnContextEnd(hctx context.Context, c *Conn) {
	if errors.Is(context.Cause(hctx), errHandshakeTimeout) {
		_ = c.CloseWithError(CodeHandshakeFailed, "authentication timed out")
		return
	}
	_ = c.CloseWithError(CodeShutdown, "authentication cancelled")
}

// maxReasonLen keeps close reasons well inside one packet.
const maxReasonLen = 256

func truncateReason(s string) string {
	if len(s) > maxReasonLen {
		return s[:maxReasonLen]
	}
	return s
}

// Close closes the listener, every connection (code CodeShutdown) and the
// socket, and waits for every goroutine the Transport started. It is safe
// to call more than once and before Start.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.state == stateClosed {
		t.mu.Unlock()
		return nil
	}
	wasStarted := t.state == stateStarted
	t.state = stateClosed
	close(t.closed)
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	if !wasStarted {
		return nil
	}
	t.cancel()
	err := t.ln.Close()
	for _, c := range conns {
		_ = c.CloseWithError(CodeShutdown, "transport closed")
	}
	err = errors.Join(convertClose(err), convertClose(t.qt.Close()), convertClose(t.pc.Close()))
	t.wg.Wait()
	if err != nil {
		return fmt.Errorf("transport: close: %w", err)
	}
	return nil
}

// convertClose drops "already closed" errors from Close calls.
func convertClose(err error) error {
	if err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, quic.ErrServerClosed) || errors.Is(err, quic.ErrTransportClosed) {
		return nil
	}
	return err
}
