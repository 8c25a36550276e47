// Package layering holds the test that keeps Cask's package layers true:
// every import points down (transport and its subpackages below pathstats
// and dist, dist below membership, all of them below actors), only
// transport talks to quic-go, and the HyParView and Plumtree state
// machines import no network, clock source or other package of the
// module. It has no code of its own.
package layering
