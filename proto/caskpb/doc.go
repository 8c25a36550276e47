// Package caskpb contains the Go types generated from Cask's wire schema,
// ../cask.proto (protobuf package cask.v1).
//
// Everything except this file is generated; do not edit it. Change
// cask.proto and run "go generate ./proto/..." from the module root.
package caskpb
