package main

import (
	"bytes"
	"testing"
)

// The demo runs end to end: its own message types cross the nodes and
// come back decoded as the same Go types.
func TestMessagesDemo(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := `Ada → "bonjour, Ada" (fr, greeting #1)
Linus → "hallo, Linus" (de, greeting #2)
Grace → "hello, Grace" (en, greeting #3)
`
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}
