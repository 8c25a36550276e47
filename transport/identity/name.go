package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNodeNameLength is the longest node name, in bytes.
const maxNodeNameLength = 255

// ErrBadNodeName means a string is not a valid node name (see
// ValidateNodeName). dist.ErrBadNodeName is the same error.
var ErrBadNodeName = errors.New("identity: bad node name")

// ValidateNodeName checks that name is a valid node name. It is Cask's one
// rule for node names, applied wherever a name enters a node: actors and
// dist configuration, dist requests and handshakes, membership contacts,
// the identity handshake and the key store. A node name
//
//   - has the form name@host: exactly one '@', with at least one byte
//     before and after it;
//   - is at most 255 bytes of valid UTF-8;
//   - contains no whitespace (unicode.IsSpace: also tabs, newlines and
//     Unicode spaces such as U+00A0 and U+2028), no control characters
//     (unicode.IsControl: C0, DEL, C1), and no '/' or '\'.
//
// So a valid name is one token in a log line, and as a file name under
// DataDir/keys/trusted/ it can neither leave that directory nor split
// into a path. (Names longer than about 235 bytes are valid but too long
// to pin on disk: a file name holds at most 255 bytes, and the pin file
// and its temp file add a suffix.) A bad name fails with an error
// matching ErrBadNodeName.
func ValidateNodeName(name string) error {
	at := strings.IndexByte(name, '@')
	bad := at <= 0 || at == len(name)-1 || strings.Count(name, "@") != 1 ||
		len(name) > maxNodeNameLength || !utf8.ValidString(name) ||
		strings.ContainsAny(name, `/\`)
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			bad = true
			break
		}
	}
	if bad {
		return fmt.Errorf("%w: %q (want name@host)", ErrBadNodeName, name)
	}
	return nil
}
