package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
)

// DefaultMaxFrameSize is the default cap on a frame's payload: a 16 MiB
// message plus room for its envelope.
const DefaultMaxFrameSize = 16<<20 + 64<<10

// frameReadChunk bounds how much ReadFrame allocates ahead of the bytes that
// actually arrived, so a lying length prefix cannot make it allocate max
// bytes up front.
const frameReadChunk = 1 << 20

var (
	// ErrFrameTooLarge means a frame's length prefix exceeds the cap.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrMalformedFrame means the length prefix is not a valid minimal
	// uvarint (longer than 10 bytes, overflowing 64 bits, or padded).
	ErrMalformedFrame = errors.New("transport: malformed frame")
)

// FrameReader is what ReadFrame reads from; *bufio.Reader implements it.
type FrameReader interface {
	io.Reader
	io.ByteReader
}

// ReadFrame reads one frame (uvarint length, then that many bytes) from r.
// The payload is read into buf, grown if needed, and returned; it is valid
// until buf is reused. max <= 0 means DefaultMaxFrameSize.
//
// Errors: io.EOF when r ends before the first byte of a frame;
// io.ErrUnexpectedEOF when it ends inside one; ErrFrameTooLarge when the
// length exceeds max; ErrMalformedFrame for a bad length prefix; r's own
// errors otherwise.
func ReadFrame(r FrameReader, buf []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	length, err := readLength(r)
	if err != nil {
		return nil, err
	}
	if length > uint64(max) {
		return nil, ErrFrameTooLarge
	}
	n := int(length)
	if cap(buf) >= n {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, noEOF(err)
		}
		return buf, nil
	}
	buf = buf[:0]
	for len(buf) < n {
		want := min(n-len(buf), frameReadChunk)
		buf = slices.Grow(buf, want)
		got, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+got]
		if err != nil {
			return nil, noEOF(err)
		}
	}
	return buf, nil
}

// readLength reads a minimal uvarint.
func readLength(r io.ByteReader) (uint64, error) {
	var x uint64
	var shift uint
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 {
				return 0, noEOF(err)
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, ErrMalformedFrame // overflows 64 bits
		}
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, ErrMalformedFrame // padded, not minimal
			}
			return x | uint64(b)<<shift, nil
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, ErrMalformedFrame // more than 10 bytes
}

// noEOF turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the frame for payload (length prefix, then payload)
// to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = AppendFrameHeader(dst, len(payload))
	return append(dst, payload...)
}

// AppendFrameHeader appends just the length prefix of an n-byte frame.
func AppendFrameHeader(dst []byte, n int) []byte {
	return binary.AppendUvarint(dst, uint64(n))
}
