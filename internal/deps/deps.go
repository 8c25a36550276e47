//go:build tools

package deps

import (
	_ "github.com/asynkron/protoactor-go/actor"
	_ "github.com/asynkron/protoactor-go/remote"
	_ "github.com/bufbuild/protocompile"
	_ "github.com/quic-go/quic-go"
	_ "go.uber.org/goleak"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "google.golang.org/protobuf/proto"
)
