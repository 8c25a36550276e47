// The data stream frame format: one envelope per message.
//
// Encoding is split around the payload (appendEnvelopeHead, the payload,
// appendEnvelopeTail) so the payload is encoded in place in the stream
// buffer; decodeEnvelopeInterned decodes a frame in place, interning the
// ids that repeat. Stateless except the interner, which one reader owns.

package dist

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of caskpb.Envelope. The data path encodes and decodes
// envelopes by hand (no intermediate message, no extra payload copy); a
// test checks both directions against the generated type.
const (
	envTarget          protowire.Number = 1
	envSenderAddress   protowire.Number = 2
	envSenderID        protowire.Number = 3
	envSenderRequestID protowire.Number = 4
	envTypeID          protowire.Number = 5
	envTypeName        protowire.Number = 6
	envPayload         protowire.Number = 7
	envSystem          protowire.Number = 8
	envHeader          protowire.Number = 9
	envTargetRequestID protowire.Number = 10
)

// envelope is one decoded data-stream frame.
type envelope struct {
	target          string
	targetRequestID uint32
	senderAddress   string
	senderID        string
	senderRequestID uint32
	typeID          uint32
	typeName        string
	payload         []byte // aliases the read buffer
	system          bool
	header          []string // key, value, key, value...
}

func sizeString(n protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeBytes(len(s))
}

func sizeVarint(n protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(n) + protowire.SizeVarint(v)
}

func appendString(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// sizeWith is size for a payload of plen bytes that is not in e.payload
// (it is encoded straight into the frame by the caller).
func (e *envelope) sizeWith(plen int) int {
	n := sizeString(envTarget, e.target) +
		sizeString(envSenderAddress, e.senderAddress) +
		sizeString(envSenderID, e.senderID) +
		sizeVarint(envSenderRequestID, uint64(e.senderRequestID)) +
		sizeVarint(envTypeID, uint64(e.typeID)) +
		sizeString(envTypeName, e.typeName) +
		sizeVarint(envTargetRequestID, uint64(e.targetRequestID))
	if plen > 0 {
		n += protowire.SizeTag(envPayload) + protowire.SizeBytes(plen)
	}
	if e.system {
		n += protowire.SizeTag(envSystem) + 1
	}
	for _, h := range e.header {
		n += protowire.SizeTag(envHeader) + protowire.SizeBytes(len(h))
	}
	return n
}

// appendEnvelopeHead appends the length prefix and every field up to the
// payload's tag and length, for a payload of plen bytes; the caller
// appends the plen payload bytes, then appendEnvelopeTail. e.payload is
// not used.
func appendEnvelopeHead(b []byte, e *envelope, plen int) []byte {
	b = protowire.AppendVarint(b, uint64(e.sizeWith(plen)))
	b = appendString(b, envTarget, e.target)
	b = appendString(b, envSenderAddress, e.senderAddress)
	b = appendString(b, envSenderID, e.senderID)
	b = appendVarint(b, envSenderRequestID, uint64(e.senderRequestID))
	b = appendVarint(b, envTypeID, uint64(e.typeID))
	b = appendString(b, envTypeName, e.typeName)
	if plen > 0 {
		b = protowire.AppendTag(b, envPayload, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(plen))
	}
	return b
}

// appendEnvelopeTail appends the fields after the payload.
func appendEnvelopeTail(b []byte, e *envelope) []byte {
	if e.system {
		b = protowire.AppendTag(b, envSystem, protowire.VarintType)
		b = append(b, 1)
	}
	for _, h := range e.header {
		b = protowire.AppendTag(b, envHeader, protowire.BytesType)
		b = protowire.AppendString(b, h)
	}
	return appendVarint(b, envTargetRequestID, uint64(e.targetRequestID))
}

// interner returns one shared string per distinct byte sequence, so ids
// that repeat on a stream (targets, senders) cost no allocation per frame.
// It remembers the previous value of each field, which is the common
// case on a stream (one actor talking to another), and looks others up in
// a bounded map; future ids, used once, are not kept. It is owned by one
// reader goroutine.
type interner struct {
	m    map[string]string
	last [internSlots]string
}

// Interner slots: one per interned envelope field.
const (
	slotTarget = iota
	slotSenderAddress
	slotSenderID
	slotTypeName
	internSlots
)

const internMax = 4096

func (in *interner) str(slot int, b []byte) string {
	if in == nil {
		return string(b)
	}
	if last := in.last[slot]; last == string(b) {
		return last
	}
	if oneShotID(b) {
		return string(b)
	}
	s, ok := in.m[string(b)]
	if !ok {
		s = string(b)
		if in.m == nil || len(in.m) >= internMax {
			in.m = make(map[string]string)
		}
		in.m[s] = s
	}
	in.last[slot] = s
	return s
}

// decodeEnvelopeInterned is decodeEnvelope with ids interned through in
// (nil: plain conversion).
func decodeEnvelopeInterned(b []byte, e *envelope, in *interner) error {
	*e = envelope{header: e.header[:0]}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: envelope tag: %v", ErrProtocol, protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == envTarget || num == envSenderAddress ||
			num == envSenderID || num == envTypeName || num == envPayload || num == envHeader):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("%w: envelope field %d: %v", ErrProtocol, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case envTarget:
				e.target = in.str(slotTarget, v)
			case envSenderAddress:
				e.senderAddress = in.str(slotSenderAddress, v)
			case envSenderID:
				e.senderID = in.str(slotSenderID, v)
			case envTypeName:
				e.typeName = in.str(slotTypeName, v)
			case envPayload:
				e.payload = v
			case envHeader:
				e.header = append(e.header, string(v))
			}
		case typ == protowire.VarintType && (num == envSenderRequestID || num == envTypeID ||
			num == envSystem || num == envTargetRequestID):
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("%w: envelope field %d: %v", ErrProtocol, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case envSenderRequestID:
				e.senderRequestID = uint32(v)
			case envTypeID:
				e.typeID = uint32(v)
			case envSystem:
				e.system = v != 0
			case envTargetRequestID:
				e.targetRequestID = uint32(v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("%w: envelope field %d: %v", ErrProtocol, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if e.target == "" {
		return fmt.Errorf("%w: envelope without target", ErrProtocol)
	}
	if len(e.header)%2 != 0 {
		return fmt.Errorf("%w: envelope header has an odd number of strings", ErrProtocol)
	}
	return nil
}
