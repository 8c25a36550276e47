package transport

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/quic-go/quic-go"
)

// DialVia connects to addr like Dial, but from a socket opened by adapter
// instead of the node's shared socket: a relay (adapter.Relayed), a socket on
// a chosen local address (UDPAdapter), or a test adapter. The QUIC
// handshake and the Authenticator run exactly as in Dial, within
// Config.HandshakeTimeout. The connection owns the socket and closes it
// when the connection ends (Transport.Close ends it too). A nil adapter
// means Dial.
//
// The connection is a dialed one, so it may migrate later (to another
// relay, for instance) with Conn.Migrate.
func (t *Transport) DialVia(ctx context.Context, addr net.Addr, adapter SocketAdapter) (*Conn, error) {
	if adapter == nil {
		return t.Dial(ctx, addr)
	}
	if addr == nil {
		return nil, errors.New("transport: dial: nil address")
	}
	// The socket's owner goroutine is counted before anything is opened,
	// under mu, so Close cannot miss it.
	t.mu.Lock()
	switch t.state {
	case stateNew:
		t.mu.Unlock()
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrNotStarted)
	case stateClosed:
		t.mu.Unlock()
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrClosed)
	}
	t.wg.Add(1)
	tctx := t.ctx
	t.mu.Unlock()

	pc, err := adapter.Open()
	if err != nil {
		t.wg.Done()
		return nil, fmt.Errorf("transport: dial %s: open socket: %w", addr, err)
	}
	qt := &quic.Transport{Conn: pc}
	owner := make(chan *Conn, 1) // nil: the dial failed
	go func() {
		defer t.wg.Done()
		if c := <-owner; c != nil {
			<-c.ctx.Done()
		}
		_ = qt.Close()
		_ = pc.Close()
	}()

	hctx, cancel := context.WithTimeoutCause(ctx, t.cfg.HandshakeTimeout, errHandshakeTimeout)
	defer cancel()
	// Transport.Close does not close this socket's quic.Transport, so it
	// cancels the handshake instead.
	stop := context.AfterFunc(tctx, cancel)
	defer stop()
	qc, err := qt.Dial(hctx, addr, t.clientTLS, t.quicConf)
	if err != nil {
		owner <- nil
		if ctx.Err() == nil && hctx.Err() != nil {
			err = context.Cause(hctx)
			if tctx.Err() != nil {
				err = ErrClosed
			}
		}
		return nil, fmt.Errorf("transport: dial %s via %s: %w", addr, pc.LocalAddr(), convertErr(err))
	}
	c, err := t.register(qc, RoleDialer)
	if err != nil {
		owner <- nil
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	owner <- c
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
