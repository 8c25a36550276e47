package bench

import (
	"context"
	"testing"
)

func TestZZCaskRTT(t *testing.T) {
	RequestRTT(context.Background(), caskSystem{}, 1000, 30000)
}
