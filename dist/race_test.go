//go:build race

package dist_test

// raceEnabled scales the long migration test down: under the race
// detector one migration under load takes about ten times as long.
const raceEnabled = true
