package actors

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/cask-p2p/cask/dist"
)

// RegisterAcceptor makes pid the acceptor of inbound user streams tagged
// tag; it receives *dist.StreamOpened. One acceptor per tag
// (dist.ErrTagInUse); tags starting with "cask:" are reserved
// (dist.ErrReservedTag). When pid stops the tag is free again and later
// streams for it are refused.
func (n *Node) RegisterAcceptor(tag string, pid *actor.PID) error {
	return n.dist.RegisterAcceptor(tag, pid)
}

// OpenStream opens a tagged byte stream to peer on the peer's dist
// connection (opening the session on demand). It returns once the peer's
// acceptor has the stream, or the peer refused it (dist.ErrUnknownTag,
// dist.ErrStreamLimit).
func (n *Node) OpenStream(ctx context.Context, peer, tag string) (*dist.Stream, error) {
	return n.dist.OpenStream(ctx, peer, tag)
}
