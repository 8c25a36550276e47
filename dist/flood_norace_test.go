//go:build !race

package dist_test

// floodRate is the attacker's dial rate in flood tests (flood_test.go).
const floodRate = 100
