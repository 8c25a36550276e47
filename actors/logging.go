package actors

import (
	"context"
	"log/slog"
)

// atLeast passes on only records at min or above. The node gives it to
// protoactor, whose Info lines (actor system started, every dead letter)
// say nothing about what the node does; its warnings and errors still
// reach Config.Logger.
type atLeast struct {
	slog.Handler
	min slog.Level
}

func (h atLeast) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h atLeast) WithAttrs(as []slog.Attr) slog.Handler {
	return atLeast{Handler: h.Handler.WithAttrs(as), min: h.min}
}

func (h atLeast) WithGroup(name string) slog.Handler {
	return atLeast{Handler: h.Handler.WithGroup(name), min: h.min}
}
