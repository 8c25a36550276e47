package hyparview

import (
	"math/rand/v2"
	"slices"
)

// clone deep-copies the state with rng as its random source. Test-only:
// the simulation uses it to start every failure scenario from the same
// steady state.
func (s *State) clone(rng *rand.Rand) *State {
	c := *s
	c.cfg.Rand = rng
	c.rng = rng
	c.active = slices.Clone(s.active)
	c.passive = slices.Clone(s.passive)
	c.pending = slices.Clone(s.pending)
	c.shuffleSent = slices.Clone(s.shuffleSent)
	return &c
}
