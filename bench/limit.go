package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// limitSystem is the limit column: what protoactor mailboxes and protobuf
// allow on this machine, with no distribution layer at all. The nodes of
// one workload share one protoactor ActorSystem. A PID that one node hands
// to another (Node.PID, or a sender carried along with a message) has the
// shared system's fake remote address, which resolves to a codecProcess:
// it encodes the message, decodes a fresh copy and posts that copy to the
// target's mailbox, on the sending goroutine. So every message between
// nodes pays for protobuf exactly once, as on a wire, and for nothing
// else: no framing, no stream, no goroutine hand-off, no network.
//
// A real layer decodes on goroutines of its own (Cask's stream readers),
// which on several cores can run beside the senders; the limit does all
// of its work on the sender's goroutine, so on a machine with spare cores
// a layer can come out slightly above it.
type limitSystem struct{}

func init() { Register(limitSystem{}) }

func (limitSystem) Name() string { return ColLimit }

// Start starts a node in the actor system of its peers, or in a new one
// when it has none. All peers must share one actor system.
func (limitSystem) Start(_ context.Context, id string, peers ...Node) (Node, error) {
	var shared *sharedActorSystem
	for _, p := range peers {
		ln, ok := p.(*limitNode)
		if !ok {
			return nil, fmt.Errorf("limit: peer %T is not a limit node", p)
		}
		if shared != nil && ln.shared != shared {
			return nil, errors.New("limit: peers live in different actor systems")
		}
		shared = ln.shared
	}
	if shared == nil {
		shared = newSharedActorSystem("limit-" + id)
	}
	if !shared.join() {
		return nil, errors.New("limit: the peers' actor system is shut down")
	}
	return &limitNode{shared: shared}, nil
}

// Connect is a no-op: there is nothing to connect.
func (limitSystem) Connect(context.Context, Node, Node) error { return nil }

// sharedActorSystem is the one actor system under the nodes of a limit
// run. It shuts down when the last of its nodes stops.
type sharedActorSystem struct {
	system *actor.ActorSystem
	// address is the fake remote address of every PID one node gives
	// another; the system resolves it to a codecProcess.
	address string

	mu    sync.Mutex
	nodes int  // started and not yet stopped
	down  bool // system shut down
}

func newSharedActorSystem(address string) *sharedActorSystem {
	s := &sharedActorSystem{
		system:  actor.NewActorSystem(actor.WithLoggerFactory(quietLogger)),
		address: address,
	}
	s.system.ProcessRegistry.RegisterAddressResolver(func(pid *actor.PID) (actor.Process, bool) {
		if pid.Address != s.address {
			return nil, false
		}
		return &codecProcess{shared: s, target: actor.NewPID(s.system.Address(), pid.Id)}, true
	})
	return s
}

func (s *sharedActorSystem) join() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false
	}
	s.nodes++
	return true
}

func (s *sharedActorSystem) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nodes--
	if s.nodes == 0 && !s.down {
		s.down = true
		s.system.Shutdown()
	}
}

// crossing is pid as another node sees it: the same actor behind the
// shared fake address.
func (s *sharedActorSystem) crossing(pid *actor.PID) *actor.PID {
	if pid.Address == s.address {
		return pid
	}
	return &actor.PID{Address: s.address, Id: pid.Id}
}

// limitNode is one node of a limit run. Actor names are shared by the
// nodes of one actor system; a name spawned on two of them fails with
// actor.ErrNameExists rather than mixing them up.
type limitNode struct {
	shared *sharedActorSystem
	once   sync.Once
}

func (n *limitNode) Root() *actor.RootContext { return n.shared.system.Root }

func (n *limitNode) PID(name string) *actor.PID {
	return &actor.PID{Address: n.shared.address, Id: name}
}

func (n *limitNode) Stop() error {
	n.once.Do(n.shared.leave)
	return nil
}

// codecProcess stands for one actor as seen from another node. It is
// resolved once per PID value, so each sender has its own; the PIDs a
// node hands out are not shared between goroutines that send at once,
// but nothing here relies on that.
type codecProcess struct {
	shared *sharedActorSystem
	target *actor.PID // the actor itself, local address
	// mt is the type of the last message, looked up by its full name
	// once per type as a reader looks up a type table entry.
	mt atomic.Pointer[messageType]
	// lastSender is the crossing PID of the previous message's sender, so
	// a steady sender costs no PID allocation (Cask caches them too).
	lastSender atomic.Pointer[actor.PID]
}

type messageType struct{ protoreflect.MessageType }

// codecBuffers holds encode buffers; a decoded message never aliases one.
var codecBuffers = sync.Pool{New: func() any { return new([]byte) }}

// SendUserMessage encodes message, decodes a fresh copy and posts the
// copy, with its sender as another node sees it, to the target. Messages
// that are not protobuf messages, or do not encode or decode, are dead
// letters, as they are on a real layer.
func (p *codecProcess) SendUserMessage(pid *actor.PID, message any) {
	_, msg, sender := actor.UnwrapEnvelope(message)
	fresh, err := p.roundTrip(msg)
	if err != nil {
		p.shared.system.DeadLetter.SendUserMessage(pid, message)
		return
	}
	if sender == nil {
		p.shared.system.Root.Send(p.target, fresh)
		return
	}
	p.shared.system.Root.Send(p.target, &actor.MessageEnvelope{Message: fresh, Sender: p.senderPID(sender)})
}

// roundTrip is the protobuf work of one message on a wire: encode, then
// decode into a new message of the type named by the encoding side.
func (p *codecProcess) roundTrip(msg any) (proto.Message, error) {
	pm, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("limit: %T is not a protobuf message", msg)
	}
	bufp := codecBuffers.Get().(*[]byte)
	defer codecBuffers.Put(bufp)
	data, err := proto.MarshalOptions{}.MarshalAppend((*bufp)[:0], pm)
	if err != nil {
		return nil, err
	}
	*bufp = data
	name := pm.ProtoReflect().Descriptor().FullName()
	mt := p.mt.Load()
	if mt == nil || mt.Descriptor().FullName() != name {
		t, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			return nil, err
		}
		mt = &messageType{t}
		p.mt.Store(mt)
	}
	fresh := mt.New().Interface()
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(data, fresh); err != nil {
		return nil, err
	}
	return fresh, nil
}

func (p *codecProcess) senderPID(sender *actor.PID) *actor.PID {
	if last := p.lastSender.Load(); last != nil && last.Id == sender.Id {
		return last
	}
	c := p.shared.crossing(sender)
	p.lastSender.Store(c)
	return c
}

// SendSystemMessage passes watches, stops and the like to the target
// unencoded: the workloads send none across nodes.
func (p *codecProcess) SendSystemMessage(_ *actor.PID, message any) {
	proc, _ := p.shared.system.ProcessRegistry.Get(p.target)
	proc.SendSystemMessage(p.target, message)
}

func (p *codecProcess) Stop(*actor.PID) {
	proc, _ := p.shared.system.ProcessRegistry.Get(p.target)
	proc.Stop(p.target)
}

var _ actor.Process = (*codecProcess)(nil)
