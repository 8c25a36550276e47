package identity

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateNodeName: the one node-name rule, with the names both former
// validators (dist's and transport's) accepted or refused, and the cases
// where they disagreed, which are now refused everywhere.
func TestValidateNodeName(t *testing.T) {
	good := []string{
		"a@host",
		"a@localhost",
		"node-1@10.0.0.7",
		"a@::1",
		"a.b_c@host.example",
		"ünïcødé@höst",
		strings.Repeat("n", 250) + "@host", // 255 bytes
	}
	for _, name := range good {
		if err := ValidateNodeName(name); err != nil {
			t.Errorf("ValidateNodeName(%q) = %v, want nil", name, err)
		}
	}
	bad := []string{
		// Refused by both former rules.
		"", "nohost", "@host", "name@", "a@b@c", "has space@h", "x/y@h", "a@h\n", "a\t@h",
		"../x@y", strings.Repeat("n", 251) + "@host", // 256 bytes
		// Accepted by dist's former rule only.
		`a\b@h`, "a\x00@h", "a\x7f@h", "a\x1b[31m@h", "a\u0085@h", "a\u2028@h", "a\xff@h", "a\v@h",
		// Accepted by both former rules, though both documented "no
		// whitespace": Unicode spaces.
		"a\u00a0@h", "a\u3000@h", "a\u2003@h",
	}
	for _, name := range bad {
		if err := ValidateNodeName(name); !errors.Is(err, ErrBadNodeName) {
			t.Errorf("ValidateNodeName(%q) = %v, want ErrBadNodeName", name, err)
		}
	}
}
