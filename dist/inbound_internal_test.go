package dist

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/cask-p2p/cask/transport"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestInboundTypeNewMessage(t *testing.T) {
	gen := newInboundType("google.protobuf.Int64Value")
	if gen.mt == nil || gen.goType == nil {
		t.Fatalf("generated type: mt %v, goType %v; want both set", gen.mt, gen.goType)
	}
	m := gen.newMessage()
	if _, ok := m.(*wrapperspb.Int64Value); !ok {
		t.Fatalf("newMessage() = %T, want *wrapperspb.Int64Value", m)
	}
	if err := unmarshalFresh.Unmarshal([]byte{0x08, 0x2a}, m); err != nil || m.(*wrapperspb.Int64Value).Value != 42 {
		t.Fatalf("decode into newMessage(): %v, %v", m, err)
	}
	if a, b := gen.newMessage(), gen.newMessage(); a == b {
		t.Fatal("newMessage() returned the same message twice")
	}

	dyn := dynamicpb.NewMessageType((&wrapperspb.Int64Value{}).ProtoReflect().Descriptor())
	if got := generatedStruct(dyn); got != nil {
		t.Fatalf("generatedStruct(dynamicpb type) = %v, want nil", got)
	}
	d := inboundType{name: "google.protobuf.Int64Value", mt: dyn}
	dm := d.newMessage()
	if dm.ProtoReflect().Type() != protoreflect.MessageType(dyn) {
		t.Fatalf("dynamic newMessage() has type %v", dm.ProtoReflect().Type())
	}
	if err := proto.Unmarshal([]byte{0x08, 0x2a}, dm); err != nil {
		t.Fatal(err)
	}

	if unknown := newInboundType("no.such.Type"); unknown.mt != nil || unknown.goType != nil {
		t.Fatalf("unknown type: %+v", unknown)
	}
}

func TestBufferedFrame(t *testing.T) {
	frame := func(body string) []byte {
		return append(protowire.AppendVarint(nil, uint64(len(body))), body...)
	}
	two := append(frame("hello"), frame("world!")...)
	cases := []struct {
		name string
		in   []byte
		max  int
		want string // "" means bufferedFrame must decline
		used int
	}{
		{"whole", two, 100, "hello", 6},
		{"partial body", frame("hello")[:4], 100, "", 0},
		{"partial prefix", []byte{0x80}, 100, "", 0},
		{"empty buffer", nil, 100, "", 0},
		{"zero length", []byte{0x00, 0x01}, 100, "", 0},
		{"non-minimal prefix", append([]byte{0x85, 0x00}, "hello"...), 100, "", 0},
		{"over max", frame("hello"), 4, "", 0},
	}
	for _, c := range cases {
		br := bufio.NewReaderSize(bytes.NewReader(c.in), 64)
		if len(c.in) > 0 {
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
		}
		got, used := bufferedFrame(br, c.max)
		if string(got) != c.want || used != c.used || (c.want == "" && got != nil) {
			t.Errorf("%s: bufferedFrame = %q, %d; want %q, %d", c.name, got, used, c.want, c.used)
		}
	}
	// Frames decoded in place and frames read by ReadFrame interleave in
	// order.
	br := bufio.NewReaderSize(bytes.NewReader(two), 16)
	var out []string
	for {
		f, used := bufferedFrame(br, 100)
		if f == nil {
			var err error
			if f, err = transport.ReadFrame(br, nil, 100); err != nil {
				break
			}
		}
		out = append(out, string(f))
		br.Discard(used)
	}
	if len(out) != 2 || out[0] != "hello" || out[1] != "world!" {
		t.Fatalf("frames read: %q", out)
	}
}

func TestInternerReusesStrings(t *testing.T) {
	var in interner
	a := in.str(slotTarget, []byte("echo"))
	b := in.str(slotTarget, []byte("echo"))
	c := in.str(slotSenderID, []byte("echo"))
	in.str(slotTarget, []byte("other"))
	d := in.str(slotTarget, []byte("echo"))
	if unsafe.StringData(a) != unsafe.StringData(b) || unsafe.StringData(a) != unsafe.StringData(c) || unsafe.StringData(a) != unsafe.StringData(d) {
		t.Fatal("the same id was not interned to one string")
	}
	if n := testing.AllocsPerRun(100, func() { in.str(slotTarget, []byte("echo")) }); n != 0 {
		t.Fatalf("repeated id allocates %v times", n)
	}
}

func TestOneShotIDsAreNotCached(t *testing.T) {
	if !oneShotID("future$1a") || !oneShotID([]byte("future$x")) || oneShotID("future$") || oneShotID("echo") || oneShotID("futures") {
		t.Fatal("oneShotID misclassifies")
	}
	var in interner
	var c pidCache
	for i := 0; i < 100; i++ {
		id := fmt.Sprintf("future$%d", i)
		in.str(slotSenderID, []byte(id))
		e := envelope{target: id, senderID: id}
		if p := c.target(&e, "me@host"); p.Id != id || p.Address != "me@host" {
			t.Fatalf("target PID %v", p)
		}
		if p := c.sender(&e, "peer@host"); p.Id != id || p.Address != "peer@host" {
			t.Fatalf("sender PID %v", p)
		}
	}
	if len(in.m) != 0 || len(c.targets) != 0 || len(c.senders) != 0 {
		t.Fatalf("future ids were cached: %d interned, %d targets, %d senders", len(in.m), len(c.targets), len(c.senders))
	}
	e := envelope{target: "echo", senderID: "pinger"}
	if c.target(&e, "me@host") != c.target(&e, "me@host") || c.sender(&e, "peer@host") != c.sender(&e, "peer@host") {
		t.Fatal("long-lived ids are not cached")
	}
}

// FuzzBufferedFrame: reading a stream with bufferedFrame first (falling
// back to transport.ReadFrame) yields exactly the frames, and the error,
// that transport.ReadFrame alone yields, whatever the bytes and however
// the read buffer splits them.
func FuzzBufferedFrame(f *testing.F) {
	frame := func(body string) []byte {
		return append(protowire.AppendVarint(nil, uint64(len(body))), body...)
	}
	f.Add(append(frame("hello"), frame("world!")...), uint8(16), uint16(100))
	f.Add(append(frame(strings.Repeat("x", 40)), 0x80), uint8(16), uint16(100))
	f.Add([]byte{0x85, 0x00, 'a', 'b', 'c', 'd', 'e'}, uint8(16), uint16(100))
	f.Add([]byte{0x00, 0x03, 'a', 'b', 'c'}, uint8(16), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, bufSize uint8, max uint16) {
		size := 16 + int(bufSize) // bufio's minimum is 16
		limit := int(max)
		read := func(fast bool) (frames []string, err error) {
			br := bufio.NewReaderSize(bytes.NewReader(data), size)
			for len(frames) < 1000 {
				if fast {
					if f, used := bufferedFrame(br, limit); f != nil {
						frames = append(frames, string(f))
						br.Discard(used)
						continue
					}
				}
				f, err := transport.ReadFrame(br, nil, limit)
				if err != nil {
					return frames, err
				}
				frames = append(frames, string(f))
			}
			return frames, nil
		}
		want, wantErr := read(false)
		got, gotErr := read(true)
		if !slices.Equal(got, want) || !errors.Is(gotErr, wantErr) && gotErr != wantErr {
			t.Fatalf("with bufferedFrame: %q, %v; ReadFrame alone: %q, %v", got, gotErr, want, wantErr)
		}
	})
}
