// Command cask-protogen generates Go code from .proto files without a
// system protoc: Cask's own wire schema (go generate ./proto/...) and the
// messages of applications built on Cask (docs/messages.md). It compiles
// the .proto files with github.com/bufbuild/protocompile, builds a
// pluginpb.CodeGeneratorRequest, runs protoc-gen-go (at the version the
// calling module's go.mod pins, via "go run") with the request on stdin,
// and writes the files of the CodeGeneratorResponse.
//
//	go run github.com/cask-p2p/cask/cmd/cask-protogen [-proto_path .] [-out .] [-module <Go import path of out>] [file.proto ...]
//
// Each .proto file needs a go_package option naming the Go import path of
// its package.
//
// With no file arguments it compiles every *.proto file directly in
// -proto_path. Output file names are import-path based, with the -module
// prefix stripped, so caskpb/cask.pb.go lands in <out>/caskpb/. Stale *.pb.go
// files in the output directories are removed.
//
// The request leaves compiler_version unset, so the generated header always
// says "protoc (unknown)" and the output depends only on the schema and the
// protoc-gen-go version in go.mod.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// pluginPkg is run with "go run", so its version is the one go.mod pins.
const pluginPkg = "google.golang.org/protobuf/cmd/protoc-gen-go"

func main() {
	protoPath := flag.String("proto_path", ".", "directory the .proto files and their imports are resolved in")
	out := flag.String("out", ".", "output root; generated files are written below it")
	module := flag.String("module", "github.com/cask-p2p/cask/proto", "Go import path prefix stripped from output file names (protoc-gen-go module=)")
	flag.Parse()

	if err := run(*protoPath, *out, *module, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "cask-protogen:", err)
		os.Exit(1)
	}
}

func run(protoPath, out, module string, files []string) error {
	if len(files) == 0 {
		matches, err := filepath.Glob(filepath.Join(protoPath, "*.proto"))
		if err != nil {
			return err
		}
		for _, m := range matches {
			files = append(files, filepath.Base(m))
		}
		if len(files) == 0 {
			return fmt.Errorf("no .proto files in %s", protoPath)
		}
	}
	sort.Strings(files)

	req, err := buildRequest(protoPath, files, "module="+module)
	if err != nil {
		return err
	}
	resp, err := runPlugin(req)
	if err != nil {
		return err
	}
	return writeResponse(out, resp)
}

// buildRequest compiles files (names relative to protoPath) and returns the
// request protoc would send: every file and its transitive imports, in
// topological order, with source info so comments carry over.
func buildRequest(protoPath string, files []string, parameter string) (*pluginpb.CodeGeneratorRequest, error) {
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: []string{protoPath},
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}

	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: files,
		Parameter:      proto.String(parameter),
		// CompilerVersion is deliberately unset: the header must not depend
		// on the tool that parsed the schema.
	}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, toProto(fd))
	}
	for _, f := range compiled {
		add(f)
	}
	return req, nil
}

func toProto(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	// protocompile results carry the descriptor proto built from the source,
	// including source code info; prefer it over a reflective round trip.
	if r, ok := fd.(linker.Result); ok {
		return proto.Clone(r.FileDescriptorProto()).(*descriptorpb.FileDescriptorProto)
	}
	return protodesc.ToFileDescriptorProto(fd)
}

func runPlugin(req *pluginpb.CodeGeneratorRequest) (*pluginpb.CodeGeneratorResponse, error) {
	in, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", "run", pluginPkg)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go run %s: %w\n%s", pluginPkg, err, stderr.String())
	}
	if stderr.Len() > 0 {
		os.Stderr.Write(stderr.Bytes())
	}
	resp := &pluginpb.CodeGeneratorResponse{}
	if err := proto.Unmarshal(stdout.Bytes(), resp); err != nil {
		return nil, fmt.Errorf("decode plugin response: %w", err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("protoc-gen-go: %s", resp.GetError())
	}
	return resp, nil
}

// writeResponse writes the response's files below out and removes *.pb.go
// files in the same directories that the response no longer contains.
func writeResponse(out string, resp *pluginpb.CodeGeneratorResponse) error {
	if len(resp.File) == 0 {
		return errors.New("protoc-gen-go produced no files")
	}
	written := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range resp.File {
		if f.GetInsertionPoint() != "" {
			return fmt.Errorf("%s: insertion points are not supported", f.GetName())
		}
		name := filepath.FromSlash(f.GetName())
		if name == "" || filepath.IsAbs(name) || !filepath.IsLocal(name) {
			return fmt.Errorf("refusing to write %q outside the output directory", f.GetName())
		}
		path := filepath.Join(out, name)
		if written[path] {
			return fmt.Errorf("%s generated twice", f.GetName())
		}
		written[path] = true
		dirs[filepath.Dir(path)] = true
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		content := []byte(f.GetContent())
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue // leave unchanged files (and their mtimes) alone
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
	}
	for dir := range dirs {
		stale, err := filepath.Glob(filepath.Join(dir, "*.pb.go"))
		if err != nil {
			return err
		}
		for _, s := range stale {
			if !written[s] && strings.HasSuffix(s, ".pb.go") {
				if err := os.Remove(s); err != nil {
					return err
				}
				// "go generate ./proto/..." may then report that it cannot
				// open the removed file when it reaches that package; the
				// generation itself is complete.
				fmt.Fprintln(os.Stderr, "protogen: removed stale", s)
			}
		}
	}
	return nil
}
