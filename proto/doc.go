// Package proto holds Cask's wire schema, cask.proto, and the tooling that
// turns it into Go.
//
// cask.proto (protobuf package cask.v1) defines every frame Cask writes on a
// QUIC connection: the AuthFrame identity handshake (docs/security.md), the
// StreamHeader that opens data and user streams, the DistHello/DistWelcome
// handshake on the control stream, the Envelope that carries actor
// messages, and the Control frames (spawn requests and responses, delivery
// failures, Goodbye, user stream credit grants). Each frame is a uvarint
// length followed by the protobuf encoding of one message. The generated Go types
// live in package caskpb (github.com/cask-p2p/cask/proto/caskpb).
//
// Field and enum numbers are append-only: never renumber, reuse or change the
// type of an existing field; add new fields with new numbers, and mark removed
// ones reserved.
//
// To regenerate caskpb after editing cask.proto, run from the module root:
//
//	go generate ./proto/...
//
// This needs no protoc: cmd/cask-protogen compiles the schema with
// github.com/bufbuild/protocompile and runs protoc-gen-go, both at the
// versions pinned in go.mod. Commit the regenerated files; TestGenerated
// fails when caskpb is not what the generator produces.
package proto

//go:generate go run ../cmd/cask-protogen
