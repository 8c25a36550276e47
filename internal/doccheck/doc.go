// Package doccheck holds the test that compiles every Go code block of
// README.md and docs/*.md, so the documentation cannot drift from the
// API. It has no code of its own; see doccheck_test.go for how blocks are
// wrapped and what a block may declare about its context.
package doccheck
