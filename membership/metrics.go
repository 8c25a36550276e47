// OpenTelemetry metrics of the membership actor (Config.MeterProvider).

package membership

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the membership instruments.
const MeterName = "github.com/cask-p2p/cask/membership"

// membershipMetrics holds the instruments of one Membership; nil when it
// has no MeterProvider.
type membershipMetrics struct {
	events       metric.Int64Counter
	registration metric.Registration
}

// newMembershipMetrics creates m's instruments in mp, or returns nil for
// a nil mp. The view sizes are read from m's snapshot of the views.
func newMembershipMetrics(m *Membership, mp metric.MeterProvider) (*membershipMetrics, error) {
	if mp == nil {
		return nil, nil
	}
	meter := mp.Meter(MeterName)
	events, err1 := meter.Int64Counter("cask.membership.events", metric.WithUnit("{event}"),
		metric.WithDescription("Membership events published to subscribers, by kind (peer_up, peer_down, joined, left)."))
	active, err2 := meter.Int64ObservableGauge("cask.membership.active_view", metric.WithUnit("{node}"),
		metric.WithDescription("Peers in the HyParView active view whose session is up."))
	passive, err3 := meter.Int64ObservableGauge("cask.membership.passive_view", metric.WithUnit("{node}"),
		metric.WithDescription("Nodes in the HyParView passive view."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		v := m.views.Load()
		o.ObserveInt64(active, int64(len(v.Active)))
		o.ObserveInt64(passive, int64(len(v.Passive)))
		return nil
	}, active, passive)
	if err != nil {
		return nil, err
	}
	return &membershipMetrics{events: events, registration: reg}, nil
}

// event counts one published event.
func (mm *membershipMetrics) event(ev any) {
	if mm == nil {
		return
	}
	var kind string
	switch ev.(type) {
	case *PeerUp:
		kind = "peer_up"
	case *PeerDown:
		kind = "peer_down"
	case *Joined:
		kind = "joined"
	case *Left:
		kind = "left"
	default:
		return
	}
	mm.events.Add(context.Background(), 1, metric.WithAttributes(attribute.String("kind", kind)))
}

func (mm *membershipMetrics) close() {
	if mm != nil {
		_ = mm.registration.Unregister()
	}
}
