//go:build race

package membership_test

// raceSlowdown scales the overlay's convergence deadlines and the
// nodes' ConnectTimeout: under the race detector every node runs several
// times slower, and 24 of them share the machine's cores.
const raceSlowdown = 3
