// OpenTelemetry metrics of the dist layer (Config.MeterProvider).
//
// The message path only adds to plain atomic counters kept per peer
// (peerCounters, peerinfo.go); asynchronous instruments read them, and
// the live sessions' path statistics and queues, when the provider's
// reader collects. With no provider (and no Config.CountTraffic) the
// counters are not even allocated: the path pays one nil check. Rare events (dead letters, migrations) use
// synchronous instruments at the point they happen.

package dist

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/cask-p2p/cask/transport/identity"
)

// MeterName is the instrumentation scope of the dist layer's instruments.
const MeterName = "github.com/cask-p2p/cask/dist"

// distMetrics holds the instruments of one Manager; nil when it has no
// MeterProvider.
type distMetrics struct {
	deadLetters       metric.Int64Counter
	migrations        metric.Int64Counter
	migrationDuration metric.Float64Histogram
	registration      metric.Registration
}

// newDistMetrics creates m's instruments in mp, or returns nil for a nil
// mp.
func newDistMetrics(m *Manager, mp metric.MeterProvider) (*distMetrics, error) {
	if mp == nil {
		return nil, nil
	}
	meter := mp.Meter(MeterName)
	dm := &distMetrics{}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	dm.deadLetters, err = meter.Int64Counter("cask.dead_letters", metric.WithUnit("{message}"),
		metric.WithDescription("Messages to or from a remote actor that could not be delivered, by reason."))
	check(err)
	dm.migrations, err = meter.Int64Counter("cask.migrations", metric.WithUnit("{migration}"),
		metric.WithDescription("Connection migrations that finished, successful or not (error.type set on failure)."))
	check(err)
	dm.migrationDuration, err = meter.Float64Histogram("cask.migration.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a connection migration took, from the request to a validated new path or failure."),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	check(err)

	sent, err := meter.Int64ObservableCounter("cask.messages.sent", metric.WithUnit("{message}"),
		metric.WithDescription("Messages (user and system) written to the peer's session."))
	check(err)
	received, err := meter.Int64ObservableCounter("cask.messages.received", metric.WithUnit("{message}"),
		metric.WithDescription("Messages (user and system) read from the peer's session."))
	check(err)
	bytesSent, err := meter.Int64ObservableCounter("cask.bytes.sent", metric.WithUnit("By"),
		metric.WithDescription("Bytes of message frames written to the peer's data streams."))
	check(err)
	bytesReceived, err := meter.Int64ObservableCounter("cask.bytes.received", metric.WithUnit("By"),
		metric.WithDescription("Bytes of message frames read from the peer's data streams."))
	check(err)
	reconnects, err := meter.Int64ObservableCounter("cask.reconnects", metric.WithUnit("{session}"),
		metric.WithDescription("Sessions established with the peer after its first one."))
	check(err)
	srtt, err := meter.Float64ObservableGauge("cask.path.srtt", metric.WithUnit("s"),
		metric.WithDescription("Smoothed round-trip time of the QUIC path to the peer."))
	check(err)
	cwnd, err := meter.Int64ObservableGauge("cask.path.congestion_window", metric.WithUnit("By"),
		metric.WithDescription("Congestion window of the QUIC connection to the peer."))
	check(err)
	pending, err := meter.Int64ObservableGauge("cask.pending.depth", metric.WithUnit("{message}"),
		metric.WithDescription("Messages queued for the peer while its session opens."))
	check(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dm.registration, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		m.traffic.peers.Range(func(k, v any) bool {
			c := v.(*peerCounters)
			set := metric.WithAttributeSet(attribute.NewSet(peerAttr(k.(string))))
			o.ObserveInt64(sent, int64(c.messagesSent.Load()), set)
			o.ObserveInt64(received, int64(c.messagesReceived.Load()), set)
			o.ObserveInt64(bytesSent, int64(c.bytesSent.Load()), set)
			o.ObserveInt64(bytesReceived, int64(c.bytesReceived.Load()), set)
			o.ObserveInt64(reconnects, int64(max(c.sessions.Load(), 1)-1), set)
			return true
		})
		m.endpoints.Range(func(k, v any) bool {
			ep := v.(*endpoint)
			set := metric.WithAttributeSet(attribute.NewSet(peerAttr(k.(string))))
			ep.mu.Lock()
			depth := len(ep.pending)
			ep.mu.Unlock()
			o.ObserveInt64(pending, int64(depth), set)
			if s := ep.sess.Load(); s != nil {
				st := s.conn.Stats()
				o.ObserveFloat64(srtt, st.SmoothedRTT.Seconds(), set)
				o.ObserveInt64(cwnd, int64(st.CongestionWindow), set)
			}
			return true
		})
		return nil
	}, sent, received, bytesSent, bytesReceived, reconnects, srtt, cwnd, pending)
	if err != nil {
		return nil, err
	}
	return dm, nil
}

func peerAttr(node string) attribute.KeyValue { return attribute.String("peer", node) }

// deadLetter counts one dead letter for node with err's reason.
func (dm *distMetrics) deadLetter(node string, err error) {
	if dm == nil {
		return
	}
	reason := errorType(err)
	attrs := []attribute.KeyValue{attribute.String("reason", reason)}
	// A node name that does not validate is whatever the sender wrote:
	// it is not a peer and would make a new series per typo.
	if node != "" && !errors.Is(err, ErrBadNodeName) {
		attrs = append(attrs, peerAttr(node))
	}
	dm.deadLetters.Add(context.Background(), 1, metric.WithAttributes(attrs...))
}

// migrated records one finished migration to node.
func (dm *distMetrics) migrated(node string, took time.Duration, err error) {
	if dm == nil {
		return
	}
	attrs := []attribute.KeyValue{peerAttr(node)}
	if err != nil {
		attrs = append(attrs, attribute.String("error.type", errorType(err)))
	}
	opt := metric.WithAttributes(attrs...)
	dm.migrations.Add(context.Background(), 1, opt)
	dm.migrationDuration.Record(context.Background(), took.Seconds(), opt)
}

func (dm *distMetrics) close() {
	if dm != nil && dm.registration != nil {
		_ = dm.registration.Unregister()
	}
}

// errorTypes names the package's sentinels for the reason and error.type
// attributes, most specific first (an unreachable peer's error also
// matches the connect failure behind it).
var errorTypes = []struct {
	err  error
	name string
}{
	{ErrUnreachable, "unreachable"},
	{ErrQueueFull, "queue_full"},
	{ErrSessionEnded, "session_ended"},
	{ErrNotProtobuf, "not_protobuf"},
	{ErrEncode, "encode"},
	{ErrMessageTooLarge, "message_too_large"},
	{ErrUnknownType, "unknown_type"},
	{ErrDecode, "decode"},
	{ErrUnsupportedSystemMessage, "unsupported_system_message"},
	{ErrBadNodeName, "bad_node_name"},
	{ErrSelf, "self"},
	{ErrTooManyPeers, "too_many_peers"},
	{ErrRejected, "rejected"},
	{ErrUnknownNode, "unknown_node"},
	{ErrConnectFailed, "connect_failed"},
	{ErrConnectionLost, "connection_lost"},
	{ErrStopped, "stopped"},
	{ErrNotConnected, "not_connected"},
	{ErrNoConn, "no_connection"},
	{ErrProtocol, "protocol"},
	{ErrPeerDisableMigration, "peer_disabled_migration"},
	{ErrMigrationNotAllowed, "migration_not_allowed"},
	{ErrTimeout, "timeout"},
	{identity.ErrClusterSecret, "cluster_secret"},
}

// errorType is err's name for an attribute; "_OTHER" (OpenTelemetry's
// fallback value) for an error of no sentinel above.
func errorType(err error) string {
	for _, e := range errorTypes {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return "_OTHER"
}
