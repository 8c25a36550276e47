package dist

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// FuzzDecodeEnvelope: decodeEnvelope never panics, a reader's interner does
// not change what it decodes, and whatever it accepts
// re-encodes (appendEnvelope) to bytes that decode to the same envelope,
// that the generated caskpb.Envelope reads the same way, and whose size()
// is exact.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, e := range sampleEnvelopes() {
		frame := appendEnvelope(nil, &e)
		_, k := protowire.ConsumeVarint(frame)
		f.Add(frame[k:])
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x01, 't', 0x80})
	f.Add(append([]byte{0x0a, 0x08}, "future$1"...))
	f.Add([]byte{0x0a, 0x01, 't', 0x4a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e envelope
		if err := decodeEnvelope(b, &e); err != nil {
			return
		}
		// A reader's interner (first sight, then its remembered values)
		// decodes to the same envelope.
		var in interner
		for range 2 {
			var ie envelope
			if err := decodeEnvelopeInterned(b, &ie, &in); err != nil || !envelopesEqual(ie, e) {
				t.Fatalf("interned decode: %v\n%+v\nplain\n%+v", err, ie, e)
			}
		}
		frame := appendEnvelope(nil, &e)
		n, k := protowire.ConsumeVarint(frame)
		body := frame[k:]
		if k < 0 || uint64(len(body)) != n || len(body) != e.size() {
			t.Fatalf("re-encoding: prefix %d (%d bytes), body %d, size() %d", n, k, len(body), e.size())
		}
		var again envelope
		if err := decodeEnvelope(body, &again); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v\n%+v", err, e)
		}
		if !envelopesEqual(e, again) {
			t.Fatalf("re-encode changed the envelope\nfirst  %+v\nsecond %+v", e, again)
		}
		// The generated decoder agrees, unless it rejects invalid UTF-8
		// in a string field (the hand decoder does not validate it).
		var p caskpb.Envelope
		if err := proto.Unmarshal(body, &p); err == nil {
			if got := fromProto(&p); !envelopesEqual(got, e) {
				t.Fatalf("caskpb.Envelope reads\n%+v\nbut decodeEnvelope\n%+v", got, e)
			}
		}
		if !bytes.Equal(e.payload, again.payload) {
			t.Fatalf("payload changed")
		}
	})
}

// FuzzControl: the control-stream, handshake and user-stream preamble
// decoders never panic on any input.
func FuzzControl(f *testing.F) {
	seeds := []proto.Message{
		&caskpb.DistHello{Node: "a@h", Incarnation: 1, MinVersion: 1, MaxVersion: 1, Capabilities: 6, ToNode: "b@h"},
		&caskpb.DistWelcome{Accepted: true, Node: "b@h", Incarnation: 2, Version: 1, Capabilities: 2},
		&caskpb.DistWelcome{Reason: caskpb.RejectReason_REJECT_REASON_DUPLICATE, Detail: "dup"},
		&caskpb.Control{Body: &caskpb.Control_SpawnRequest{SpawnRequest: &caskpb.SpawnRequest{RequestId: 1, Kind: "k", Name: "n"}}},
		&caskpb.Control{Body: &caskpb.Control_SpawnResponse{SpawnResponse: &caskpb.SpawnResponse{RequestId: 1, PidId: "p", Error: caskpb.SpawnError_SPAWN_ERROR_NAME_TAKEN}}},
		&caskpb.Control{Body: &caskpb.Control_DeliveryFailure{DeliveryFailure: &caskpb.DeliveryFailure{Target: "t", SenderId: "s", TypeName: "x.Y", Reason: caskpb.FailureReason_FAILURE_REASON_UNKNOWN_TYPE}}},
		&caskpb.Control{Body: &caskpb.Control_Goodbye{Goodbye: &caskpb.Goodbye{Reason: caskpb.GoodbyeReason_GOODBYE_REASON_IDLE, DataStreams: 3}}},
		&caskpb.Control{Body: &caskpb.Control_SessionPin{SessionPin: &caskpb.SessionPin{Pinned: true}}},
		&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_DATA, Index: 5},
		&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_USER, Tag: "snapshots"},
		&caskpb.StreamAccept{Refusal: caskpb.StreamRefusal_STREAM_REFUSAL_UNKNOWN_TAG, Detail: "no acceptor"},
		&caskpb.Control{Body: &caskpb.Control_SessionAck{SessionAck: &caskpb.SessionAck{Positions: []*caskpb.SessionPosition{{Index: 1, Received: 7}, {Index: 3, Received: 1 << 40}}}}},
		&caskpb.DistHello{Node: "a@h", Incarnation: 1, SessionId: 9, ResumeSessionId: 8, Received: []*caskpb.SessionPosition{{Index: 0, Received: 3}}},
		&caskpb.DistWelcome{Accepted: true, Node: "b@h", Incarnation: 2, SessionId: 8, Resumed: true, Received: []*caskpb.SessionPosition{{Index: 2, Received: 5}}},
		&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_DATA, Index: 5, FirstSeq: 1234},
		&caskpb.Control{Body: &caskpb.Control_Membership{Membership: &caskpb.Membership{
			Type: caskpb.MembershipType_MEMBERSHIP_TYPE_SHUFFLE, From: "a@h", Node: "a@h", Ttl: 3, Nodes: []string{"b@h", "c@h"}}}},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []proto.Message{&caskpb.Control{}, &caskpb.DistHello{}, &caskpb.DistWelcome{}, &caskpb.StreamHeader{}, &caskpb.StreamAccept{}} {
			if err := proto.Unmarshal(b, m); err != nil {
				continue
			}
			// What decodes re-encodes and decodes to the same message.
			out, err := proto.Marshal(m)
			if err != nil {
				t.Fatalf("%T decoded but does not re-encode: %v", m, err)
			}
			again := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(out, again); err != nil || !proto.Equal(m, again) {
				t.Fatalf("%T: re-encode round trip differs (err %v)", m, err)
			}
		}
		// The session's control reader: any frame that Control accepts
		// is handled by its type switch without a nil dereference; peer
		// positions (acknowledgements, a hello's or welcome's) never
		// panic the session state they are applied to.
		st := fuzzSessionState()
		var h caskpb.DistHello
		if proto.Unmarshal(b, &h) == nil {
			_ = st.applyPositions(h.GetReceived())
		}
		var c caskpb.Control
		if proto.Unmarshal(b, &c) == nil {
			switch body := c.Body.(type) {
			case *caskpb.Control_SessionAck:
				s := &session{state: st, writers: make([]*streamWriter, len(st.out))}
				for i := range s.writers {
					s.writers[i] = newStreamWriter(s, i, st.out[i], true, nil)
				}
				_ = s.acknowledged(body.SessionAck)
			case *caskpb.Control_DeliveryFailure:
				_ = failureError(body.DeliveryFailure.GetReason(), body.DeliveryFailure.GetTypeName(), body.DeliveryFailure.GetDetail())
			case *caskpb.Control_Goodbye:
				_ = goodbyeReason(body.Goodbye.GetReason())
			}
		}
	})
}

// fuzzSessionState is a sequenced session state of four streams on a
// Manager that has only a configuration.
func fuzzSessionState() *sessionState {
	m := &Manager{cfg: Config{DataStreams: 4, SessionBuffer: 1 << 20}}
	return newSessionState(m, "p@h", 1, 2, 3, 1<<caskpb.Capability_CAPABILITY_SESSIONS)
}

// FuzzSessionRing: whatever bytes a ring holds and whatever positions
// acknowledge them, cutting, resending and taking the undelivered frames
// never panic, and what is resent is a suffix of what was kept.
func FuzzSessionRing(f *testing.F) {
	frame := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	f.Add(append(frame("one"), frame("two")...), uint8(1), uint8(3), uint8(2))
	f.Add([]byte{0xff, 0xff, 0x01}, uint8(0), uint8(5), uint8(9))
	f.Fuzz(func(t *testing.T, b []byte, split, frames, ack uint8) {
		st := fuzzSessionState()
		o := st.out[0]
		cut := int(split) % (len(b) + 1)
		first, mid, end := uint64(0), uint64(frames)/2, uint64(frames)
		o.keep(first, mid, append([]byte(nil), b[:cut]...))
		o.keep(mid, end, append([]byte(nil), b[cut:]...))
		st.ack(0, uint64(ack))
		_, resend := o.unacked()
		if len(resend) > len(b) || !bytes.HasSuffix(b, resend) {
			t.Fatalf("resend %x is not a suffix of %x", resend, b)
		}
		_ = o.pendingFrames()
		got, _ := st.takeUndelivered()
		if !bytes.Equal(got[0], resend) {
			t.Fatalf("undelivered %x, resend %x", got[0], resend)
		}
	})
}
