package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/quic-go/quic-go"
)

// The raw quic-go baselines: no actor runtime, no framing beyond what a
// workload needs, default quic-go configuration, self-signed TLS 1.3.

const rawALPN = "caskbench-raw"

func rawTLS() (server, client *tls.Config, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "caskbench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{rawALPN}, MinVersion: tls.VersionTLS13}
	client = &tls.Config{InsecureSkipVerify: true, NextProtos: []string{rawALPN}, MinVersion: tls.VersionTLS13}
	return server, client, nil
}

// rawServer is a quic-go listener on 127.0.0.1 that hands every accepted
// stream to handle.
type rawServer struct {
	ln     *quic.Listener
	cancel context.CancelFunc
	done   chan struct{}
}

func startRawServer(tlsConf *tls.Config, handle func(*quic.Stream)) (*rawServer, error) {
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, &quic.Config{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &rawServer{ln: ln, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			go func() {
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					go handle(st)
				}
			}()
		}
	}()
	return s, nil
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) close() {
	s.cancel()
	_ = s.ln.Close()
	<-s.done
}

// echoFrames echoes 8-byte frames until the stream ends.
func echoFrames(st *quic.Stream) {
	defer st.Close()
	var buf [8]byte
	for {
		if _, err := io.ReadFull(st, buf[:]); err != nil {
			return
		}
		if _, err := st.Write(buf[:]); err != nil {
			return
		}
	}
}

// rawRoundTrip writes one 8-byte frame and reads its echo.
func rawRoundTrip(st *quic.Stream, seq uint64) error {
	var out, in [8]byte
	binary.BigEndian.PutUint64(out[:], seq)
	if _, err := st.Write(out[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(st, in[:]); err != nil {
		return err
	}
	if in != out {
		return errors.New("raw: echo mismatch")
	}
	return nil
}

// RawRTT measures warm+n sequential 8-byte round trips on one
// bidirectional stream and returns the last n.
func RawRTT(ctx context.Context, warm, n int) ([]time.Duration, error) {
	srvTLS, cliTLS, err := rawTLS()
	if err != nil {
		return nil, err
	}
	srv, err := startRawServer(srvTLS, echoFrames)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	conn, err := quic.DialAddr(ctx, srv.addr(), cliTLS, &quic.Config{})
	if err != nil {
		return nil, err
	}
	defer conn.CloseWithError(0, "done")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	out := make([]time.Duration, 0, n)
	for i := 0; i < warm+n; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := rawRoundTrip(st, uint64(i)); err != nil {
			return nil, err
		}
		if i >= warm {
			out = append(out, time.Since(t0))
		}
	}
	return out, nil
}

// RawSetup measures, n times, a fresh quic-go dial (handshake) plus one
// 8-byte round trip on a new stream to a long-lived listener.
func RawSetup(ctx context.Context, n int) ([]time.Duration, error) {
	srvTLS, cliTLS, err := rawTLS()
	if err != nil {
		return nil, err
	}
	srv, err := startRawServer(srvTLS, echoFrames)
	if err != nil {
		return nil, err
	}
	defer srv.close()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		conn, err := quic.DialAddr(ctx, srv.addr(), cliTLS, &quic.Config{})
		if err != nil {
			return nil, err
		}
		st, err := conn.OpenStreamSync(ctx)
		if err == nil {
			err = rawRoundTrip(st, uint64(i))
		}
		d := time.Since(t0)
		conn.CloseWithError(0, "done")
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// RawBulk writes total bytes in chunk-sized writes on one stream to a
// reader that counts them and answers one byte after the sender closes
// its side. It returns the time from the first write to that answer.
func RawBulk(ctx context.Context, total int64, chunk int) (time.Duration, error) {
	srvTLS, cliTLS, err := rawTLS()
	if err != nil {
		return 0, err
	}
	got := make(chan int64, 1)
	srv, err := startRawServer(srvTLS, func(st *quic.Stream) {
		defer st.Close()
		n, _ := io.CopyBuffer(io.Discard, st, make([]byte, chunk))
		got <- n
		_, _ = st.Write([]byte{1})
	})
	if err != nil {
		return 0, err
	}
	defer srv.close()
	conn, err := quic.DialAddr(ctx, srv.addr(), cliTLS, &quic.Config{})
	if err != nil {
		return 0, err
	}
	defer conn.CloseWithError(0, "done")
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	buf := make([]byte, chunk)
	t0 := time.Now()
	for sent := int64(0); sent < total; sent += int64(chunk) {
		if _, err := st.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := st.Close(); err != nil {
		return 0, err
	}
	var ack [1]byte
	if _, err := io.ReadFull(st, ack[:]); err != nil {
		return 0, fmt.Errorf("raw bulk: waiting for reader: %w", err)
	}
	d := time.Since(t0)
	if n := <-got; n != total {
		return 0, fmt.Errorf("raw bulk: reader got %d bytes, want %d", n, total)
	}
	return d, nil
}
