// Package fielderr reports invalid configuration fields by their path.
//
// Each config section (transport.Config, dist.Config, membership.Config)
// validates itself and names a bad field relative to the section
// ("KeepAlivePeriod 5s must be below IdleTimeout 5s"). When the same
// section is validated inside actors.Config, Under moves every such error
// beneath the section's path, so the message names the field the way the
// user wrote it ("Config.Transport.KeepAlivePeriod 5s must be below
// IdleTimeout 5s").
package fielderr

import (
	"errors"
	"fmt"
)

// Error is one invalid field. Err says what is wrong with it; the error
// also matches kind, when set, with errors.Is.
type Error struct {
	// Path names the field: "IdleTimeout", `Peers["b@host"]`,
	// "Config.Transport.IdleTimeout". Empty means the whole section.
	Path string
	// Err is the problem, worded to follow the path.
	Err error

	sep  string // between Path and Err in the message
	kind error  // a sentinel matched but not printed
}

// New reports that the field at path is invalid; the message reads
// "<path> <problem>", so problem starts with the value or a verb:
// New("IdleTimeout", "%v is negative", d).
func New(path, format string, args ...any) *Error {
	return &Error{Path: path, Err: fmt.Errorf(format, args...), sep: " "}
}

// Wrap reports that the field at path (the whole section when empty) is
// invalid because of err, which stays matchable with errors.Is; the
// message reads "<path>: <err>".
func Wrap(path string, err error) *Error {
	return &Error{Path: path, Err: err, sep: ": "}
}

// WithKind makes e match sentinel with errors.Is without adding its text
// to the message, and returns e.
func (e *Error) WithKind(sentinel error) *Error {
	e.kind = sentinel
	return e
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + e.sep + e.Err.Error()
}

// Unwrap returns the problem and the kind, so sentinels of either match.
func (e *Error) Unwrap() []error {
	if e.kind == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.kind}
}

// Under returns err with every *Error in it (err itself, or the errors it
// joins) moved beneath prefix: a Path p becomes prefix+"."+p, an empty
// Path becomes prefix. Any other error is wrapped as "prefix: err". A nil
// err stays nil.
func Under(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *Error
	if e, ok := err.(*Error); ok {
		fe = e
	}
	switch {
	case fe != nil && fe.Path == "":
		moved := *fe
		moved.Path, moved.sep = prefix, ": "
		return &moved
	case fe != nil:
		moved := *fe
		moved.Path = prefix + "." + fe.Path
		return &moved
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs := joined.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = Under(prefix, e)
		}
		return errors.Join(out...)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
