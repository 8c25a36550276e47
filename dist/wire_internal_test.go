package dist

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
)

// sampleEnvelopes covers every field alone and together, empty and
// maximal values, and headers with empty strings.
func sampleEnvelopes() []envelope {
	return []envelope{
		{target: "t"},
		{target: "echo", typeName: "google.protobuf.StringValue", payload: []byte{0x0a, 2, 'h', 'i'}},
		{target: "$12", typeID: 3, payload: []byte{1, 2, 3}},
		{target: "x", system: true, typeID: 1},
		{
			target: "worker/7", targetRequestID: 0xffffffff,
			senderAddress: "a@host", senderID: "future$9", senderRequestID: 42,
			typeID: 0xffffffff, typeName: strings.Repeat("n", 300),
			payload: bytes.Repeat([]byte{0xab}, 70000), system: true,
			header: []string{"k", "v", "", "", "trace", strings.Repeat("z", 200)},
		},
		{target: "h", header: []string{"only", ""}},
		{target: "ü→✓", senderID: "s", typeID: 1 << 20},
	}
}

// normalize makes decoded and input envelopes comparable (nil vs empty).
func normalize(e envelope) envelope {
	if len(e.payload) == 0 {
		e.payload = nil
	}
	if len(e.header) == 0 {
		e.header = nil
	}
	return e
}

func envelopesEqual(a, b envelope) bool {
	a, b = normalize(a), normalize(b)
	return a.target == b.target && a.targetRequestID == b.targetRequestID &&
		a.senderAddress == b.senderAddress && a.senderID == b.senderID &&
		a.senderRequestID == b.senderRequestID && a.typeID == b.typeID &&
		a.typeName == b.typeName && bytes.Equal(a.payload, b.payload) &&
		a.system == b.system && slices.Equal(a.header, b.header)
}

// frameBody strips and checks the length prefix of one appendEnvelope
// frame.
func frameBody(t testing.TB, frame []byte) []byte {
	t.Helper()
	n, k := protowire.ConsumeVarint(frame)
	if k < 0 {
		t.Fatalf("frame length: %v", protowire.ParseError(k))
	}
	body := frame[k:]
	if uint64(len(body)) != n {
		t.Fatalf("frame length prefix %d, body %d bytes", n, len(body))
	}
	return body
}

func toProto(e *envelope) *caskpb.Envelope {
	return &caskpb.Envelope{
		Target: e.target, SenderAddress: e.senderAddress, SenderId: e.senderID,
		SenderRequestId: e.senderRequestID, TypeId: e.typeID, TypeName: e.typeName,
		Payload: e.payload, System: e.system, Header: e.header, TargetRequestId: e.targetRequestID,
	}
}

func fromProto(p *caskpb.Envelope) envelope {
	return envelope{
		target: p.GetTarget(), senderAddress: p.GetSenderAddress(), senderID: p.GetSenderId(),
		senderRequestID: p.GetSenderRequestId(), typeID: p.GetTypeId(), typeName: p.GetTypeName(),
		payload: p.GetPayload(), system: p.GetSystem(), header: p.GetHeader(), targetRequestID: p.GetTargetRequestId(),
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for i, in := range sampleEnvelopes() {
		frame := appendEnvelope([]byte("prefix"), &in)
		if !bytes.HasPrefix(frame, []byte("prefix")) {
			t.Fatalf("#%d: appendEnvelope lost what was in the buffer", i)
		}
		body := frameBody(t, frame[len("prefix"):])
		if len(body) != in.size() {
			t.Errorf("#%d: size() = %d, encoded body is %d bytes", i, in.size(), len(body))
		}
		var out envelope
		if err := decodeEnvelope(body, &out); err != nil {
			t.Fatalf("#%d: decode: %v", i, err)
		}
		if !envelopesEqual(in, out) {
			t.Errorf("#%d: round trip\n got %+v\nwant %+v", i, out, in)
		}
	}
}

// TestEnvelopeDecodeReuse: decoding into a used envelope leaves nothing of
// the previous one behind.
func TestEnvelopeDecodeReuse(t *testing.T) {
	samples := sampleEnvelopes()
	var e envelope
	for i := range samples {
		for _, j := range []int{i, (i + 1) % len(samples)} {
			body := frameBody(t, appendEnvelope(nil, &samples[j]))
			if err := decodeEnvelope(body, &e); err != nil {
				t.Fatal(err)
			}
			if !envelopesEqual(e, samples[j]) {
				t.Fatalf("decode of #%d after #%d\n got %+v\nwant %+v", j, i, e, samples[j])
			}
		}
	}
}

// TestEnvelopeMatchesGenerated cross-checks the hand-written codec with
// the generated caskpb.Envelope in both directions.
func TestEnvelopeMatchesGenerated(t *testing.T) {
	for i, in := range sampleEnvelopes() {
		// Hand encoder → generated decoder.
		body := frameBody(t, appendEnvelope(nil, &in))
		var p caskpb.Envelope
		if err := proto.Unmarshal(body, &p); err != nil {
			t.Fatalf("#%d: proto.Unmarshal of appendEnvelope output: %v", i, err)
		}
		if !proto.Equal(&p, toProto(&in)) {
			t.Errorf("#%d: appendEnvelope → caskpb.Envelope\n got %v\nwant %v", i, &p, toProto(&in))
		}
		if got := fromProto(&p); !envelopesEqual(got, in) {
			t.Errorf("#%d: fields differ: got %+v want %+v", i, got, in)
		}

		// Generated encoder → hand decoder, in both field orders the
		// generated code may use.
		for _, opts := range []proto.MarshalOptions{{}, {Deterministic: true}} {
			b, err := opts.Marshal(toProto(&in))
			if err != nil {
				t.Fatal(err)
			}
			var out envelope
			if err := decodeEnvelope(b, &out); err != nil {
				t.Fatalf("#%d: decodeEnvelope of proto.Marshal output: %v", i, err)
			}
			if !envelopesEqual(out, in) {
				t.Errorf("#%d: caskpb.Envelope → decodeEnvelope\n got %+v\nwant %+v", i, out, in)
			}
		}
	}
}

// TestEnvelopeUnknownFields: fields this build does not know are skipped,
// whatever their wire type (forward compatibility).
func TestEnvelopeUnknownFields(t *testing.T) {
	in := envelope{target: "t", typeID: 2, payload: []byte("p"), header: []string{"a", "b"}}
	body := frameBody(t, appendEnvelope(nil, &in))
	var extra []byte
	extra = protowire.AppendTag(extra, 99, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 1<<60)
	extra = protowire.AppendTag(extra, 100, protowire.BytesType)
	extra = protowire.AppendBytes(extra, []byte("future"))
	extra = protowire.AppendTag(extra, 101, protowire.Fixed32Type)
	extra = protowire.AppendFixed32(extra, 7)
	extra = protowire.AppendTag(extra, 102, protowire.Fixed64Type)
	extra = protowire.AppendFixed64(extra, 7)
	extra = protowire.AppendTag(extra, 103, protowire.StartGroupType)
	extra = protowire.AppendTag(extra, 1, protowire.VarintType)
	extra = protowire.AppendVarint(extra, 5)
	extra = protowire.AppendTag(extra, 103, protowire.EndGroupType)
	// A known field number with an unexpected wire type is skipped too.
	extra = protowire.AppendTag(extra, envSystem, protowire.BytesType)
	extra = protowire.AppendBytes(extra, []byte{1})

	for _, b := range [][]byte{append(slices.Clone(body), extra...), append(slices.Clone(extra), body...)} {
		var out envelope
		if err := decodeEnvelope(b, &out); err != nil {
			t.Fatalf("decode with unknown fields: %v", err)
		}
		if !envelopesEqual(out, in) {
			t.Errorf("decode with unknown fields\n got %+v\nwant %+v", out, in)
		}
	}
}

func TestEnvelopeMalformed(t *testing.T) {
	valid := frameBody(t, appendEnvelope(nil, &envelope{
		target: "echo", senderID: "s", typeName: "x.Y", payload: []byte("payload"), header: []string{"k", "v"},
	}))
	tag := func(n protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, n, typ) }
	cases := map[string][]byte{
		"empty":                  {},
		"no target":              frameBody(t, appendEnvelope(nil, &envelope{typeName: "x.Y"})),
		"odd header count":       frameBody(t, appendEnvelope(nil, &envelope{target: "t", header: []string{"k"}})),
		"truncated tag":          {0x80},
		"field number zero":      {0x00, 0x00},
		"truncated length":       append(tag(envTarget, protowire.BytesType), 0x80),
		"length past the end":    append(tag(envTarget, protowire.BytesType), 10, 'a'),
		"truncated varint field": append(tag(envTypeID, protowire.VarintType), 0xff),
		"varint over 10 bytes":   append(tag(envTypeID, protowire.VarintType), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"unterminated group":     append(slices.Clone(valid), tag(50, protowire.StartGroupType)...),
		"stray end group":        append(slices.Clone(valid), tag(50, protowire.EndGroupType)...),
		"reserved wire type 6":   append(slices.Clone(valid), 0x0e),
		"truncated fixed32":      append(slices.Clone(valid), append(tag(50, protowire.Fixed32Type), 1, 2)...),
		"truncated payload":      valid[:len(valid)-8], // cuts the headers and 2 payload bytes
	}
	for i := 1; i < len(valid); i++ {
		var e envelope
		if err := decodeEnvelope(valid[:i], &e); err == nil {
			// Cutting at a field boundary before the header pair ends
			// can leave a valid envelope only if target is present and
			// headers are even; check the cut is such a boundary.
			if e.target == "" || len(e.header)%2 != 0 {
				t.Errorf("prefix of %d bytes decoded to an invalid envelope %+v", i, e)
			}
		} else if !errors.Is(err, ErrProtocol) {
			t.Errorf("prefix of %d bytes: error %v does not wrap ErrProtocol", i, err)
		}
	}
	for name, b := range cases {
		var e envelope
		err := decodeEnvelope(b, &e)
		if err == nil {
			t.Errorf("%s: decoded without error: %+v", name, e)
			continue
		}
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: error %v does not wrap ErrProtocol", name, err)
		}
	}
}

// TestStreamIndexStable: all messages to one target use one stream, and
// targets spread over the pool.
func TestStreamIndexStable(t *testing.T) {
	used := map[int]bool{}
	for i := 0; i < 1000; i++ {
		id := "actor" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('0'+i%10))
		k := streamIndex(id, DefaultDataStreams)
		if k < 0 || k >= DefaultDataStreams {
			t.Fatalf("streamIndex(%q) = %d out of range", id, k)
		}
		if k != streamIndex(id, DefaultDataStreams) {
			t.Fatalf("streamIndex(%q) not stable", id)
		}
		used[k] = true
	}
	if len(used) < DefaultDataStreams/2 {
		t.Errorf("1000 targets used only %d of %d streams", len(used), DefaultDataStreams)
	}
	if streamIndex("anything", 1) != 0 {
		t.Errorf("a pool of one stream must always pick 0")
	}
}

func TestIncarnationFormat(t *testing.T) {
	inc := Incarnation(0x5eed)
	if got := inc.String(); got != "0000000000005eed" {
		t.Errorf("String() = %q", got)
	}
	if got := fmt.Sprintf("%v", inc); got != "0000000000005eed" {
		t.Errorf("%%v = %q", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "incarnation", inc)
	if !strings.Contains(buf.String(), `"incarnation":"0000000000005eed"`) {
		t.Errorf("JSON log: %s", buf.String())
	}
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "incarnation", inc)
	if !strings.Contains(buf.String(), `incarnation=0000000000005eed`) {
		t.Errorf("text log: %s", buf.String())
	}
}
