package membership

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/membership/hyparview"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// wireSamples holds one message of every type, with every field the type
// uses set.
func wireSamples() []hyparview.Message {
	return []hyparview.Message{
		{Type: hyparview.Join, From: "a@h"},
		{Type: hyparview.ForwardJoin, From: "a@h", Node: "j@h", TTL: 6},
		{Type: hyparview.Neighbor, From: "a@h", HighPriority: true},
		{Type: hyparview.Neighbor, From: "a@h"},
		{Type: hyparview.NeighborReply, From: "a@h", Accepted: true},
		{Type: hyparview.NeighborReply, From: "a@h"},
		{Type: hyparview.Disconnect, From: "a@h", Leaving: true},
		{Type: hyparview.Disconnect, From: "a@h"},
		{Type: hyparview.Shuffle, From: "a@h", Node: "o@h", TTL: 3, Nodes: []string{"o@h", "b@h", "c@h"}},
		{Type: hyparview.ShuffleReply, From: "a@h", Node: "o@h", Nodes: []string{"d@h"}},
	}
}

// TestWireRoundTrip maps every message type to caskpb.Membership, through
// its protobuf encoding, and back.
func TestWireRoundTrip(t *testing.T) {
	for _, m := range wireSamples() {
		want := sampleAddresses(m)
		b, err := proto.Marshal(encode(m, want))
		if err != nil {
			t.Fatalf("%v: marshal: %v", m.Type, err)
		}
		var p caskpb.Membership
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatalf("%v: unmarshal: %v", m.Type, err)
		}
		got, err := decode(&p)
		if err != nil {
			t.Fatalf("%v: decode: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%v: round trip\n got %+v\nwant %+v", m.Type, got, m)
		}
		if addrs := addresses(&p, got); !sameAddresses(addrs, want) {
			t.Errorf("%v: addresses %v, want %v", m.Type, addrs, want)
		}
	}
}

// sampleAddresses gives every node m names an address.
func sampleAddresses(m hyparview.Message) []*caskpb.NodeAddress {
	var out []*caskpb.NodeAddress
	for i, n := range names(m) {
		out = append(out, &caskpb.NodeAddress{Node: n, Addr: fmt.Sprintf("127.0.0.%d:7000", i+1)})
	}
	return out
}

func sameAddresses(a, b []*caskpb.NodeAddress) bool {
	return slices.EqualFunc(a, b, func(x, y *caskpb.NodeAddress) bool {
		return x.GetNode() == y.GetNode() && x.GetAddr() == y.GetAddr()
	})
}

// TestWireAddressesOnlyOfNamedNodes: a received message's addresses are
// read only for nodes it names, once each; the rest (a peer trying to
// plant addresses of nodes the message does not mention, or repeating
// one) is ignored.
func TestWireAddressesOnlyOfNamedNodes(t *testing.T) {
	m := hyparview.Message{Type: hyparview.Shuffle, From: "a@h", Node: "o@h", Nodes: []string{"b@h"}}
	p := encode(m, []*caskpb.NodeAddress{
		{Node: "x@h", Addr: "127.0.0.9:1"},
		{Node: "b@h", Addr: "127.0.0.2:1"},
		{Node: "b@h", Addr: "127.0.0.3:1"},
		{Node: "a@h", Addr: "127.0.0.1:1"},
	})
	got := addresses(p, m)
	want := []*caskpb.NodeAddress{{Node: "b@h", Addr: "127.0.0.2:1"}, {Node: "a@h", Addr: "127.0.0.1:1"}}
	if !sameAddresses(got, want) {
		t.Fatalf("addresses = %v, want %v", got, want)
	}
}

// TestWireEveryTypeMapped keeps the two type enums in step: every
// protocol type has a distinct wire type and back.
func TestWireEveryTypeMapped(t *testing.T) {
	for typ := hyparview.Join; typ <= hyparview.ShuffleReply; typ++ {
		w, ok := toWireType[typ]
		if !ok || w == caskpb.MembershipType_MEMBERSHIP_TYPE_UNSPECIFIED {
			t.Fatalf("%v has no wire type", typ)
		}
		if fromWireType[w] != typ {
			t.Fatalf("%v maps back to %v", typ, fromWireType[w])
		}
	}
	if len(fromWireType) != len(toWireType) {
		t.Fatalf("wire types are not one-to-one")
	}
}

func TestWireDecodeRejects(t *testing.T) {
	for name, p := range map[string]*caskpb.Membership{
		"unspecified type": {From: "a@h"},
		"unknown type":     {Type: caskpb.MembershipType(99), From: "a@h"},
		"no sender":        {Type: caskpb.MembershipType_MEMBERSHIP_TYPE_JOIN},
	} {
		if _, err := decode(p); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err = %v, want ErrBadMessage", name, err)
		}
	}
}

func TestWireTTLClamped(t *testing.T) {
	got, err := decode(&caskpb.Membership{Type: caskpb.MembershipType_MEMBERSHIP_TYPE_SHUFFLE, From: "a@h", Ttl: 1<<32 - 1})
	if err != nil {
		t.Fatal(err)
	}
	if got.TTL < 0 {
		t.Fatalf("TTL %d is negative", got.TTL)
	}
	if w := encode(hyparview.Message{Type: hyparview.Shuffle, TTL: -5}, nil); w.GetTtl() != 0 {
		t.Fatalf("negative TTL encoded as %d", w.GetTtl())
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
	for name, c := range map[string]Config{
		"bad contact":      {ContactNodes: []string{"no-host"}},
		"negative period":  {ShufflePeriod: -1},
		"PRWL above ARWL":  {ActiveRandomWalkLength: 2, PassiveRandomWalkLength: 3},
		"backoff inverted": {BackoffMin: time.Minute, BackoffMax: time.Second},
		"negative passive": {PassiveSize: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	d := Config{}.WithDefaults()
	if d.ActiveSize != 5 || d.PassiveSize != 30 || d.ActiveRandomWalkLength != 6 || d.PassiveRandomWalkLength != 3 ||
		d.ShufflePeriod != 10*time.Second || d.MaxFailures != 5 || d.BackoffMin != time.Second ||
		d.BackoffMax != 5*time.Minute || d.PassiveMaxAge != 5*time.Minute {
		t.Fatalf("defaults are not the reference values: %+v", d)
	}
	if d.ReconnectPeriod != DefaultReconnectPeriod {
		t.Fatalf("ReconnectPeriod default %v, want %v", d.ReconnectPeriod, DefaultReconnectPeriod)
	}
	off := Config{ReconnectPeriod: -1}
	if err := off.Validate(); err != nil || off.WithDefaults().ReconnectPeriod >= 0 {
		t.Fatalf("negative ReconnectPeriod (off): %v, kept as %v", err, off.WithDefaults().ReconnectPeriod)
	}
}
