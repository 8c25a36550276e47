//go:build race

package dist_test

// floodRate is the attacker's dial rate in flood tests (flood_test.go):
// lower under the race detector, which makes every handshake several
// times dearer on the CPU the test shares with the node under attack.
const floodRate = 30
