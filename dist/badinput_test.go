package dist_test

import (
	"bufio"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/cask-p2p/cask/actors"
	"github.com/cask-p2p/cask/dist"
	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// echoPair starts b (with an echo actor named "echo") and a, which knows b
// through a static map, and opens the session a → b. It returns a monitor
// probe on a for b, so a test can prove the session never went down.
func echoPair(t *testing.T, acfg, bcfg actors.Config) (a, b *actors.Node, echo *actor.PID, mon *probe) {
	t.Helper()
	bcfg.Dist.DisableDNS = true
	b = startNode(t, "b@localhost", bcfg)
	spawnEcho(t, b, "echo")
	acfg.Dist.DisableDNS = true
	if acfg.Dist.Peers == nil {
		acfg.Dist.Peers = peersOf(b)
	}
	a = startNode(t, "a@localhost", acfg)
	if err := a.Connect(ctxTimeout(t), b.Name()); err != nil {
		t.Fatalf("connect: %v", err)
	}
	mon = monitorProbe(t, a, b.Name())
	mon.nodeUp(t, b.Name()) // the session is up already: NodeUp at once
	echo = actor.NewPID(b.Name(), "echo")
	mustEcho(t, a, echo, "before")
	return a, b, echo, mon
}

// stillUp checks the session a → b survived: a request is answered, a
// lists b, and a's monitor saw no NodeDown.
func stillUp(t *testing.T, a *actors.Node, echo *actor.PID, mon *probe) {
	t.Helper()
	mustEcho(t, a, echo, "after")
	if got := a.Nodes(); len(got) != 1 || got[0] != echo.Address {
		t.Fatalf("a.Nodes() = %v, want [%s]", got, echo.Address)
	}
	mon.none(t, "NodeDown", isNodeDown)
}

type notProto struct{ X int }

func TestSendNonProtobuf(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	dl := collectDeadLetters(t, a)

	a.Root().Send(echo, notProto{X: 1})
	got := dl.waitFor(t, dist.ErrNotProtobuf)
	if got.Node != echo.Address {
		t.Errorf("dead letter Node = %q, want %q", got.Node, echo.Address)
	}
	if m, ok := got.Message.(notProto); !ok || m.X != 1 {
		t.Errorf("dead letter Message = %#v, want the message as sent", got.Message)
	}
	if got.PID.String() != echo.String() {
		t.Errorf("dead letter PID = %v, want %v", got.PID, echo)
	}

	// A request with a non-protobuf message fails at once, not after its
	// timeout.
	start := time.Now()
	_, err := a.Root().RequestFuture(echo, &notProto{X: 2}, 10*time.Second).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("request with a non-protobuf message: err = %v, want %v", err, actor.ErrDeadLetter)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("request with a non-protobuf message failed after %v, want well under its timeout", d)
	}
	stillUp(t, a, echo, mon)
}

// TestSendNonProtobufNoSession: the message is refused before any session
// is opened for it.
func TestSendNonProtobufNoSession(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, b, "echo")
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	dl := collectDeadLetters(t, a)
	echo := actor.NewPID(b.Name(), "echo")
	a.Root().Send(echo, "a string is not protobuf")
	dl.waitFor(t, dist.ErrNotProtobuf)
	if n := a.Nodes(); len(n) != 0 {
		t.Errorf("a non-protobuf message opened a session: Nodes() = %v", n)
	}
	mustEcho(t, a, echo, "x")
}

// unknownMessage builds a dynamic message of type casktest.Unknown, whose
// descriptor is in no registry, so no node has a Go type for it.
func unknownMessage(t *testing.T) proto.Message {
	t.Helper()
	md := dynamicType(t, "Unknown", "proto3", descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL)
	if _, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		t.Fatalf("%s is registered globally; the test needs an unknown type", md.FullName())
	}
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("value"), protoreflect.ValueOfString("who am I"))
	return m
}

// dynamicType builds message casktest.<name> (in its own file, in no
// registry) with one string field "value" (number 1) of the given label.
func dynamicType(t *testing.T, name, syntax string, label descriptorpb.FieldDescriptorProto_Label) protoreflect.MessageDescriptor {
	t.Helper()
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("casktest/" + strings.ToLower(name) + ".proto"),
		Package: proto.String("casktest"),
		Syntax:  proto.String(syntax),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String(name),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name:     proto.String("value"),
				JsonName: proto.String("value"),
				Number:   proto.Int32(1),
				Type:     descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
				Label:    label.Enum(),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		t.Fatal(err)
	}
	return fd.Messages().ByName(protoreflect.Name(name))
}

func TestUnknownMessageType(t *testing.T) {
	a, b, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	adl := collectDeadLetters(t, a)
	bdl := collectDeadLetters(t, b)
	msg := unknownMessage(t)

	start := time.Now()
	_, err := a.Root().RequestFuture(echo, msg, 10*time.Second).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("request with an unknown type: err = %v, want %v", err, actor.ErrDeadLetter)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("request with an unknown type failed after %v, want well under its timeout", d)
	}

	got := adl.waitFor(t, dist.ErrUnknownType)
	if got.Node != b.Name() {
		t.Errorf("sender's dead letter Node = %q, want %q", got.Node, b.Name())
	}
	if got.PID.GetAddress() != b.Name() || got.PID.GetId() != "echo" {
		t.Errorf("sender's dead letter PID = %v, want %v", got.PID, echo)
	}
	if !strings.Contains(got.Reason.Error(), "casktest.Unknown") {
		t.Errorf("sender's dead letter reason %q does not name the type", got.Reason)
	}
	rgot := bdl.waitFor(t, dist.ErrUnknownType)
	if rgot.Node != a.Name() {
		t.Errorf("receiver's dead letter Node = %q, want %q", rgot.Node, a.Name())
	}

	// A plain Send of the same type, now known on the stream's type table.
	a.Root().Send(echo, msg)
	eventually(t, waitTimeout, func() bool { return adl.count(dist.ErrUnknownType) >= 2 },
		"a second ErrUnknownType dead letter on the sender")
	stillUp(t, a, echo, mon)
}

func TestMessageTooLarge(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{Dist: dist.Config{MaxMessageSize: 1024}}, actors.Config{})
	dl := collectDeadLetters(t, a)
	big := wrapperspb.String(strings.Repeat("x", 2000))

	a.Root().Send(echo, big)
	got := dl.waitFor(t, dist.ErrMessageTooLarge)
	if got.Node != echo.Address || got.Message != big {
		t.Errorf("dead letter = %+v, want the message as sent, for %s", got.UndeliveredMessage, echo.Address)
	}

	start := time.Now()
	_, err := a.Root().RequestFuture(echo, big, 10*time.Second).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("oversize request: err = %v, want %v", err, actor.ErrDeadLetter)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("oversize request failed after %v, want well under its timeout", d)
	}
	// Just under the limit still goes through.
	mustEcho(t, a, echo, strings.Repeat("y", 1000))
	stillUp(t, a, echo, mon)
}

// TestMessageTooLargeNoSession: the limit applies on the queued path too
// (no session open yet).
func TestMessageTooLargeNoSession(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, b, "echo")
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b), MaxMessageSize: 1024}})
	dl := collectDeadLetters(t, a)
	echo := actor.NewPID(b.Name(), "echo")
	a.Root().Send(echo, wrapperspb.String(strings.Repeat("x", 2000)))
	dl.waitFor(t, dist.ErrMessageTooLarge)
	mustEcho(t, a, echo, "x")
}

// TestMessageTooLargeForReceiver: the sender's limit is higher than the
// receiver's. The design says an oversize message gets a dead letter and
// the connection stays up; the sender cannot know the receiver's limit.
func TestMessageTooLargeForReceiver(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{}, actors.Config{Dist: dist.Config{MaxMessageSize: 1024}})
	adl := collectDeadLetters(t, a)
	// Over the receiver's MaxMessageSize plus its 64 KiB envelope margin.
	a.Root().Send(echo, wrapperspb.String(strings.Repeat("x", 100<<10)))
	deadline := time.After(waitTimeout)
	for {
		if _, ok := adl.find(dist.ErrMessageTooLarge); ok {
			break
		}
		select {
		case m := <-mon.ch:
			if d, ok := m.(*dist.NodeDown); ok {
				t.Fatalf("a message over the receiver's limit tore the session down (NodeDown %s: %v) "+
					"and the sender got no dead letter (got %v); want a dead letter with ErrMessageTooLarge "+
					"and the session up", d.Reason, d.Err, adl.all())
			}
		case <-deadline:
			t.Fatalf("no dead letter with ErrMessageTooLarge within %v (got %v)", waitTimeout, adl.all())
		case <-time.After(5 * time.Millisecond):
		}
	}
	stillUp(t, a, echo, mon)
}

func TestUnknownNode(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	dl := collectDeadLetters(t, a)

	err := a.Connect(ctxTimeout(t), "ghost@localhost")
	if !errors.Is(err, dist.ErrUnknownNode) {
		t.Fatalf("Connect(ghost) = %v, want %v", err, dist.ErrUnknownNode)
	}
	ghost := actor.NewPID("ghost@localhost", "x")
	a.Root().Send(ghost, wrapperspb.String("boo"))
	got := dl.waitFor(t, dist.ErrUnknownNode)
	if got.Node != "ghost@localhost" || got.PID.String() != ghost.String() {
		t.Errorf("dead letter = %+v for %v, want node ghost@localhost, PID %v", got.UndeliveredMessage, got.PID, ghost)
	}

	start := time.Now()
	_, err = a.Root().RequestFuture(ghost, wrapperspb.String("boo"), 10*time.Second).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("request to an unknown node: err = %v, want %v", err, actor.ErrDeadLetter)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("request to an unknown node failed after %v", d)
	}
	stillUp(t, a, echo, mon)
}

func TestBadNodeName(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	for _, name := range []string{"nohost", "a@b@c", "", "@host", "name@", "has space@h", "x/y@h"} {
		err := a.Connect(ctxTimeout(t), name)
		if !errors.Is(err, dist.ErrBadNodeName) {
			t.Errorf("Connect(%q) = %v, want %v", name, err, dist.ErrBadNodeName)
		}
		if _, err := a.SpawnRemote(ctxTimeout(t), name, "echo", ""); !errors.Is(err, dist.ErrBadNodeName) {
			t.Errorf("SpawnRemote(%q) = %v, want %v", name, err, dist.ErrBadNodeName)
		}
	}
}

func TestConnectSelf(t *testing.T) {
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	if err := a.Connect(ctxTimeout(t), a.Name()); !errors.Is(err, dist.ErrSelf) {
		t.Errorf("Connect(self) = %v, want %v", err, dist.ErrSelf)
	}
	if _, err := a.SpawnRemote(ctxTimeout(t), a.Name(), "echo", ""); !errors.Is(err, dist.ErrSelf) {
		t.Errorf("SpawnRemote(self) = %v, want %v", err, dist.ErrSelf)
	}
	// Through the actor-message API too.
	res, err := a.Root().RequestFuture(a.DistPID(), &dist.Connect{Node: a.Name()}, waitTimeout).Result()
	if err != nil {
		t.Fatal(err)
	}
	if cr, ok := res.(*dist.ConnectResult); !ok || !errors.Is(cr.Err, dist.ErrSelf) {
		t.Errorf("dist.Connect{self} answered %#v, want ErrSelf", res)
	}
}

// rawPeer is a hand-driven dist client: it passes the QUIC and dist
// handshakes as "evil@localhost" and then writes whatever the test wants.
type rawPeer struct {
	conn *transport.Conn
	ctrl *transport.Stream
	br   *bufio.Reader
}

func dialRaw(t *testing.T, target *actors.Node, name string) *rawPeer {
	t.Helper()
	tr, err := transport.New(rawTransportConfig(t, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	ctx := ctxTimeout(t)
	conn, err := tr.Dial(ctx, target.Addr())
	if err != nil {
		t.Fatalf("raw dial: %v", err)
	}
	ctrl, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatalf("raw control stream: %v", err)
	}
	hello, _ := proto.Marshal(&caskpb.DistHello{
		Node: name, Incarnation: 1, MinVersion: 1, MaxVersion: 1, ToNode: target.Name(),
	})
	if _, err := ctrl.Write(transport.AppendFrame(nil, hello)); err != nil {
		t.Fatalf("raw hello: %v", err)
	}
	ctrl.SetReadDeadline(time.Now().Add(waitTimeout))
	br := bufio.NewReader(ctrl)
	frame, err := transport.ReadFrame(br, nil, 64<<10)
	if err != nil {
		t.Fatalf("raw welcome: %v", err)
	}
	var w caskpb.DistWelcome
	if err := proto.Unmarshal(frame, &w); err != nil {
		t.Fatalf("raw welcome: %v", err)
	}
	if !w.GetAccepted() || w.GetNode() != target.Name() {
		t.Fatalf("raw hello refused: %v", &w)
	}
	ctrl.SetReadDeadline(time.Time{})
	return &rawPeer{conn: conn, ctrl: ctrl, br: br}
}

// dataStream opens a data stream and writes its header and then junk.
func (r *rawPeer) dataStream(t *testing.T, junk []byte, fin bool) {
	t.Helper()
	st, err := r.conn.OpenUniStream(ctxTimeout(t))
	if err != nil {
		t.Fatalf("raw data stream: %v", err)
	}
	hdr, _ := proto.Marshal(&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_DATA})
	if _, err := st.Write(append(transport.AppendFrame(nil, hdr), junk...)); err != nil {
		t.Fatalf("raw data write: %v", err)
	}
	if fin {
		_ = st.Close()
	}
}

// closedForProtocolViolation waits until the node closed the raw
// connection with CodeProtocolViolation.
func (r *rawPeer) closedForProtocolViolation(t *testing.T) {
	t.Helper()
	select {
	case <-r.conn.Context().Done():
	case <-time.After(waitTimeout):
		t.Fatalf("the node did not close a connection that broke the protocol")
	}
	cause := context.Cause(r.conn.Context())
	var ce *transport.CloseError
	if !errors.As(cause, &ce) {
		t.Fatalf("connection ended with %v (%T), want a *transport.CloseError", cause, cause)
	}
	if ce.Code != transport.CodeProtocolViolation || !ce.Remote {
		t.Fatalf("connection closed with %+v, want code %v by the peer", ce, transport.CodeProtocolViolation)
	}
}

// envelopeFrame is a well-formed data frame for target with an inline type.
func envelopeFrame(target string, typeID uint32, typeName string, payload []byte) []byte {
	b, _ := proto.Marshal(&caskpb.Envelope{Target: target, TypeId: typeID, TypeName: typeName, Payload: payload})
	return transport.AppendFrame(nil, b)
}

func TestMalformedFrames(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	spawnEcho(t, b, "echo")
	a := startNode(t, "a@localhost", actors.Config{Dist: dist.Config{DisableDNS: true, Peers: peersOf(b)}})
	echo := actor.NewPID(b.Name(), "echo")
	mustEcho(t, a, echo, "warm-up")
	aMon := monitorProbe(t, a, b.Name())
	aMon.nodeUp(t, b.Name())
	bMon := monitorProbe(t, b, "evil@localhost")

	// a keeps talking to b while b is being abused.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			got, err := echoRequest(a, echo, "ping")
			sent.Add(1)
			if err == nil && got != "echo:ping" {
				err = errors.New("wrong answer " + got)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}
	}()

	hugeLen := protowire.AppendVarint(nil, 1<<40)
	elevenFF := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	stringType := string((&wrapperspb.StringValue{}).ProtoReflect().Descriptor().FullName())
	cases := []struct {
		name  string
		write func(t *testing.T, r *rawPeer)
	}{
		{"length varint of 11 bytes", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, elevenFF, false)
		}},
		{"length varint overflowing 64 bits", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, false)
		}},
		{"padded length varint", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, []byte{0x85, 0x00, 1, 2, 3, 4, 5}, false)
		}},
		{"frame length over the cap", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, hugeLen, false)
		}},
		{"truncated envelope in a whole frame", func(t *testing.T, r *rawPeer) {
			// field 1 (target), length 10, only 3 bytes.
			r.dataStream(t, transport.AppendFrame(nil, []byte{0x0a, 10, 'e', 'c', 'h'}), false)
		}},
		{"frame cut by the end of the stream", func(t *testing.T, r *rawPeer) {
			f := envelopeFrame("echo", 0, stringType, []byte{0x0a, 1, 'x'})
			r.dataStream(t, f[:len(f)-2], true)
		}},
		{"envelope without target", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, envelopeFrame("", 0, stringType, nil), false)
		}},
		{"undefined type id", func(t *testing.T, r *rawPeer) {
			r.dataStream(t, envelopeFrame("echo", 7, "", nil), false)
		}},
		{"bad stream header", func(t *testing.T, r *rawPeer) {
			st, err := r.conn.OpenUniStream(ctxTimeout(t))
			if err != nil {
				t.Fatal(err)
			}
			hdr, _ := proto.Marshal(&caskpb.StreamHeader{Kind: caskpb.StreamKind_STREAM_KIND_USER})
			_, _ = st.Write(transport.AppendFrame(nil, hdr))
		}},
		{"stream header over its cap", func(t *testing.T, r *rawPeer) {
			st, err := r.conn.OpenUniStream(ctxTimeout(t))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = st.Write(protowire.AppendVarint(nil, 4096))
		}},
		{"control frame over the cap", func(t *testing.T, r *rawPeer) {
			_, _ = r.ctrl.Write(hugeLen)
		}},
		{"control frame garbage", func(t *testing.T, r *rawPeer) {
			_, _ = r.ctrl.Write(transport.AppendFrame(nil, []byte{0x0a, 50, 1, 2}))
		}},
		{"control length varint of 11 bytes", func(t *testing.T, r *rawPeer) {
			_, _ = r.ctrl.Write(elevenFF)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, b, "evil@localhost")
			bMon.nodeUp(t, "evil@localhost")
			tc.write(t, r)
			r.closedForProtocolViolation(t)
			down := bMon.nodeDown(t, "evil@localhost")
			if down.Reason != dist.ReasonProtocolError {
				t.Errorf("b reported evil down with %q (%v), want %q", down.Reason, down.Err, dist.ReasonProtocolError)
			}
		})
	}

	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests a → b failed while b was abused; first: %v", n, sent.Load(), firstErr.Load())
	}
	if sent.Load() == 0 {
		t.Errorf("no request a → b ran during the test")
	}
	aMon.none(t, "NodeDown", isNodeDown)
	mustEcho(t, a, echo, "after")
}

// TestRawPeerValidMessage checks the raw client itself: a well-formed
// frame from it is delivered, so the malformed cases fail for the junk
// alone.
func TestRawPeerValidMessage(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	p := newProbe(t, b)
	r := dialRaw(t, b, "evil@localhost")
	payload, _ := proto.Marshal(wrapperspb.String("hello from raw"))
	typeName := string((&wrapperspb.StringValue{}).ProtoReflect().Descriptor().FullName())
	r.dataStream(t, envelopeFrame(p.PID.Id, 0, typeName, payload), false)
	got := p.next(t, "the raw message", func(m any) bool {
		sv, ok := m.(*wrapperspb.StringValue)
		return ok && sv.Value == "hello from raw"
	})
	_ = got
	select {
	case <-r.conn.Context().Done():
		t.Fatalf("valid frame closed the connection: %v", context.Cause(r.conn.Context()))
	default:
	}
}

// TestDecodeFailure: the receiver knows the type name but the payload does
// not decode as it (a string field holding invalid UTF-8).
func TestDecodeFailure(t *testing.T) {
	a, b, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	adl := collectDeadLetters(t, a)
	bdl := collectDeadLetters(t, b)

	// A look-alike google.protobuf.StringValue whose field 1 is bytes, in
	// a private registry.
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("casktest/fake_wrappers.proto"),
		Package: proto.String("google.protobuf"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: proto.String("StringValue"),
			Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("value"), JsonName: proto.String("value"), Number: proto.Int32(1),
				Type:  descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(),
				Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		t.Fatal(err)
	}
	md := fd.Messages().ByName("StringValue")
	bad := dynamicpb.NewMessage(md)
	bad.Set(md.Fields().ByName("value"), protoreflect.ValueOfBytes([]byte{0xff, 0xfe}))

	start := time.Now()
	_, err = a.Root().RequestFuture(echo, bad, 10*time.Second).Result()
	if !errors.Is(err, actor.ErrDeadLetter) {
		t.Errorf("request that does not decode: err = %v, want %v", err, actor.ErrDeadLetter)
	}
	if d := time.Since(start); d > fastFail {
		t.Errorf("request that does not decode failed after %v", d)
	}
	adl.waitFor(t, dist.ErrDecode)
	bdl.waitFor(t, dist.ErrDecode)
	stillUp(t, a, echo, mon)
}

// TestUnsupportedSystemMessage: system messages other than Watch, Unwatch,
// Terminated and Stop do not cross nodes.
func TestUnsupportedSystemMessage(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	dl := collectDeadLetters(t, a)
	proc, _ := a.System().ProcessRegistry.Get(echo)
	proc.SendSystemMessage(echo, &actor.Restart{})
	got := dl.waitFor(t, dist.ErrUnsupportedSystemMessage)
	if _, ok := got.Message.(*actor.Restart); !ok || got.Node != echo.Address {
		t.Errorf("dead letter = %+v, want the Restart for %s", got.UndeliveredMessage, echo.Address)
	}
	stillUp(t, a, echo, mon)
}

// TestQueueFull: while a session is being opened at most PendingLimit
// messages wait; the rest are dead-lettered at once with ErrQueueFull, and
// the queued ones with the connect error once it fails.
func TestQueueFull(t *testing.T) {
	gone := startNode(t, "gone@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	addr := gone.Addr().String()
	if err := gone.Stop(); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, "a@localhost", actors.Config{
		Transport: transport.Config{
			HandshakeTimeout: 500 * time.Millisecond,
		},
		Dist: dist.Config{
			DisableDNS:     true,
			Peers:          map[string]string{"gone@localhost": addr},
			PendingLimit:   3,
			ConnectTimeout: time.Second,
		},
	})
	dl := collectDeadLetters(t, a)
	pid := actor.NewPID("gone@localhost", "x")
	for i := 0; i < 10; i++ {
		a.Root().Send(pid, wrapperspb.Int32(int32(i)))
	}
	count := func(reason error) int {
		n := 0
		for _, d := range dl.all() {
			if errors.Is(d.Reason, reason) {
				n++
			}
		}
		return n
	}
	if n := count(dist.ErrQueueFull); n != 7 {
		t.Errorf("%d ErrQueueFull dead letters right after the sends, want 7", n)
	}
	eventually(t, waitTimeout, func() bool { return count(dist.ErrConnectFailed) == 3 },
		"3 ErrConnectFailed dead letters for the queued messages (got %v)", dl.all())
	// Each message got exactly one dead letter.
	if n := len(dl.all()); n != 10 {
		t.Errorf("%d dead letters for 10 messages", n)
	}
}

// TestHandshakeRejects: a dist hello the node refuses gets a DistWelcome
// with the reason, not a silent close.
func TestHandshakeRejects(t *testing.T) {
	b := startNode(t, "b@localhost", actors.Config{Dist: dist.Config{DisableDNS: true}})
	hello := func(h *caskpb.DistHello) []byte {
		raw, _ := proto.Marshal(h)
		return transport.AppendFrame(nil, raw)
	}
	ok := func() *caskpb.DistHello {
		return &caskpb.DistHello{Node: "evil@localhost", Incarnation: 1, MinVersion: 1, MaxVersion: 1, ToNode: b.Name()}
	}
	with := func(f func(h *caskpb.DistHello)) []byte { h := ok(); f(h); return hello(h) }
	cases := []struct {
		name  string
		frame []byte
		want  caskpb.RejectReason
	}{
		{"wrong node", with(func(h *caskpb.DistHello) { h.ToNode = "c@localhost" }), caskpb.RejectReason_REJECT_REASON_WRONG_NODE},
		{"no common version", with(func(h *caskpb.DistHello) { h.MinVersion, h.MaxVersion = 2, 9 }), caskpb.RejectReason_REJECT_REASON_VERSION},
		{"zero incarnation", with(func(h *caskpb.DistHello) { h.Incarnation = 0 }), caskpb.RejectReason_REJECT_REASON_BAD_HELLO},
		{"bad node name", with(func(h *caskpb.DistHello) { h.Node = "nohost" }), caskpb.RejectReason_REJECT_REASON_BAD_HELLO},
		{"claims the node's own name", with(func(h *caskpb.DistHello) { h.Node = b.Name() }), caskpb.RejectReason_REJECT_REASON_BAD_HELLO},
		{"garbage", transport.AppendFrame(nil, []byte{0x0a, 0x7f, 1}), caskpb.RejectReason_REJECT_REASON_BAD_HELLO},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := transport.New(rawTransportConfig(t, "evil@localhost"))
			if err != nil {
				t.Fatal(err)
			}
			if err := tr.Start(); err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			ctx := ctxTimeout(t)
			conn, err := tr.Dial(ctx, b.Addr())
			if err != nil {
				t.Fatal(err)
			}
			ctrl, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ctrl.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			ctrl.SetReadDeadline(time.Now().Add(waitTimeout))
			frame, err := transport.ReadFrame(bufio.NewReader(ctrl), nil, 64<<10)
			if err != nil {
				t.Fatalf("no welcome: %v", err)
			}
			var w caskpb.DistWelcome
			if err := proto.Unmarshal(frame, &w); err != nil {
				t.Fatal(err)
			}
			if w.GetAccepted() || w.GetReason() != tc.want {
				t.Errorf("welcome = %v, want a refusal with %v", &w, tc.want)
			}
			// As a real dialer does after a refusal.
			_ = conn.CloseWithError(transport.CodeHandshakeFailed, "refused")
		})
	}
	if n := b.Nodes(); len(n) != 0 {
		t.Errorf("refused peers are listed: %v", n)
	}
}

// requiredMessage builds dynamic proto2 messages of type
// casktest.Required: one with its required field unset, which does not
// encode, and one with it set.
func requiredMessage(t *testing.T) (unset, set proto.Message) {
	t.Helper()
	md := dynamicType(t, "Required", "proto2", descriptorpb.FieldDescriptorProto_LABEL_REQUIRED)
	m := dynamicpb.NewMessage(md)
	m.Set(md.Fields().ByName("value"), protoreflect.ValueOfString("here"))
	return dynamicpb.NewMessage(md), m
}

// TestEncodeFailure: a message that does not encode is a dead letter on
// the sender, on the fast path and on the queued path, and leaves the
// stream consistent: the next message of the same type still defines the
// type on the wire (a dangling type id would be a protocol violation).
func TestEncodeFailure(t *testing.T) {
	a, _, echo, mon := echoPair(t, actors.Config{}, actors.Config{})
	dl := collectDeadLetters(t, a)
	unset, set := requiredMessage(t)

	a.Root().Send(echo, unset)
	got := dl.waitFor(t, dist.ErrEncode)
	if got.Message != unset || got.Node != echo.Address {
		t.Errorf("dead letter = %+v, want the message as sent, for %s", got.UndeliveredMessage, echo.Address)
	}
	if !strings.Contains(got.Reason.Error(), "casktest.Required") {
		t.Errorf("reason %q does not name the type", got.Reason)
	}
	// The receiver has no Go type for casktest.Required, so the valid
	// message comes back as ErrUnknownType: it was framed correctly.
	a.Root().Send(echo, set)
	dl.waitFor(t, dist.ErrUnknownType)
	stillUp(t, a, echo, mon)

	// Queued path: no session to c yet.
	a.Root().Send(actor.NewPID("c@localhost", "x"), unset)
	eventually(t, waitTimeout, func() bool { return dl.count(dist.ErrEncode) >= 2 },
		"a second ErrEncode dead letter (queued path)")
}
