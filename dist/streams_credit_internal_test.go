package dist

import "testing"

// The receiver grants credit back in batches of at least a quarter
// window, and every consumed byte is granted once the batches add up.
func TestRecvAccountGrantsBatched(t *testing.T) {
	a := recvAccount{window: 1000}
	if !a.received(1000) {
		t.Fatal("a full window was refused")
	}
	granted, frames := 0, 0
	for consumed := 0; consumed < 1000; consumed += 100 {
		if g := a.consumed(100); g > 0 {
			if g < 250 {
				t.Fatalf("grant of %d bytes: below a quarter window", g)
			}
			granted += g
			frames++
		}
	}
	if frames != 3 || granted != 900 || a.ungranted != 100 || a.buffered != 0 {
		t.Fatalf("%d grants of %d bytes in all, %d owed, %d buffered; want 3 of 900, 100 owed, 0 buffered",
			frames, granted, a.ungranted, a.buffered)
	}
	// A window of 1 byte grants every byte.
	b := recvAccount{window: 1}
	b.received(1)
	if g := b.consumed(1); g != 1 {
		t.Fatalf("window 1: grant %d, want 1", g)
	}
}

// Bytes past the window are an overrun, whether they arrive at once or
// after the buffer filled up.
func TestRecvAccountOverrun(t *testing.T) {
	a := recvAccount{window: 100}
	if a.received(101) {
		t.Fatal("101 bytes into a window of 100 accepted")
	}
	if !a.received(60) || !a.received(40) {
		t.Fatal("a window filled in two parts was refused")
	}
	if a.received(1) {
		t.Fatal("a byte past a full window accepted")
	}
	a.consumed(10) // owed, not granted yet: the sender has no credit for it
	if !a.received(10) {
		t.Fatal("bytes into room freed by the reader were refused")
	}
}

// The sender never holds more than the peer's window, and takes what it
// holds.
func TestSendAccount(t *testing.T) {
	a := sendAccount{window: 100, credit: 100}
	if n := a.take(60); n != 60 {
		t.Fatalf("take 60 of 100: %d", n)
	}
	if n := a.take(60); n != 40 {
		t.Fatalf("take 60 of 40: %d", n)
	}
	if n := a.take(1); n != 0 {
		t.Fatalf("take with no credit: %d", n)
	}
	a.grant(30)
	a.grant(1000)
	if a.credit != 100 {
		t.Fatalf("credit %d after oversized grants, want the window, 100", a.credit)
	}
}
