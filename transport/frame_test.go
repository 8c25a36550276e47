package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	payloads := [][]byte{{}, []byte("a"), bytes.Repeat([]byte("x"), 127), bytes.Repeat([]byte("y"), 128), bytes.Repeat([]byte("z"), 3<<20)}
	var wire []byte
	for _, p := range payloads {
		wire = AppendFrame(wire, p)
	}
	r := bufio.NewReader(bytes.NewReader(wire))
	var buf []byte
	for i, want := range payloads {
		got, err := ReadFrame(r, buf, 0)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
		buf = got
	}
	if _, err := ReadFrame(r, buf, 0); err != io.EOF {
		t.Fatalf("after last frame: %v, want io.EOF", err)
	}
	if h := AppendFrameHeader(nil, 300); !bytes.Equal(h, []byte{0xac, 0x02}) {
		t.Fatalf("header for 300: %x", h)
	}
}

func TestFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"empty", nil, 0, io.EOF},
		{"eof in varint", []byte{0x80}, 0, io.ErrUnexpectedEOF},
		{"eof in payload", []byte{3, 'a'}, 0, io.ErrUnexpectedEOF},
		{"eof before payload", []byte{3}, 0, io.ErrUnexpectedEOF},
		{"too large", AppendFrameHeader(nil, 11), 10, ErrFrameTooLarge},
		{"too large default", AppendFrameHeader(nil, DefaultMaxFrameSize+1), 0, ErrFrameTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 0, ErrFrameTooLarge},
		{"overflow", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, 0, ErrMalformedFrame},
		{"eleven bytes", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, ErrMalformedFrame},
		{"padded", []byte{0x81, 0x00, 'a'}, 0, ErrMalformedFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), nil, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestFrameLyingLengthDoesNotPreallocate(t *testing.T) {
	in := AppendFrameHeader(nil, DefaultMaxFrameSize)
	in = append(in, "short"...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	buf, err := ReadFrame(bufio.NewReader(bytes.NewReader(in)), nil, 0)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF || buf != nil {
		t.Fatalf("got %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*frameReadChunk {
		t.Fatalf("allocated %d bytes for a 5-byte body", alloc)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, nil))
	f.Add(AppendFrame(nil, []byte("hello")))
	f.Add(AppendFrame(AppendFrame(nil, []byte("a")), []byte("bc")))
	f.Add(AppendFrame(nil, bytes.Repeat([]byte{0xee}, 300)))
	f.Add(AppendFrameHeader(nil, 1<<20))
	f.Add([]byte{0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	const max = 1 << 16
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bytes.NewReader(in)
		r := bufio.NewReader(br)
		var buf []byte
		consumed := 0
		for range 64 {
			frame, err := ReadFrame(r, buf, max)
			if err != nil {
				return
			}
			if len(frame) > max {
				t.Fatalf("frame of %d bytes exceeds max", len(frame))
			}
			enc := AppendFrame(nil, frame)
			if !bytes.Equal(enc, in[consumed:consumed+len(enc)]) {
				t.Fatalf("re-encoding %x differs from consumed %x", enc, in[consumed:consumed+len(enc)])
			}
			consumed += len(enc)
			buf = frame
		}
	})
}
