// Envelope helpers only the tests use: whole-envelope encode and decode
// and the size of an envelope that holds its payload.

package dist

// size returns the encoded size of e, payload included.
func (e *envelope) size() int { return e.sizeWith(len(e.payload)) }

// appendEnvelope appends e as a length-prefixed frame.
func appendEnvelope(b []byte, e *envelope) []byte {
	b = appendEnvelopeHead(b, e, len(e.payload))
	b = append(b, e.payload...)
	return appendEnvelopeTail(b, e)
}

// decodeEnvelope parses one frame body into e. Unknown fields are skipped
// (forward compatibility); a malformed body returns an error wrapping
// ErrProtocol. e.payload aliases b.
func decodeEnvelope(b []byte, e *envelope) error { return decodeEnvelopeInterned(b, e, nil) }
