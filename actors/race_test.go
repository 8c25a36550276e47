//go:build race

package actors_test

// raceEnabled scales the flood tests down: the race detector slows every
// handshake several times over.
const raceEnabled = true
