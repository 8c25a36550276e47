//go:build nocask

package bench

// Built with -tags nocask: the Cask half is left out so the protoactor
// and raw quic-go halves build and run before (or without) package actors.
