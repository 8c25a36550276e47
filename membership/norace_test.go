//go:build !race

package membership_test

// raceSlowdown scales the overlay's convergence deadlines and the
// nodes' ConnectTimeout (see race_test.go).
const raceSlowdown = 1
