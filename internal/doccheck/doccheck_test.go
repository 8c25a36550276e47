package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// How a block is compiled:
//
//   - A block that starts with a package clause is a whole file.
//   - A block with a top-level func, type, var or const declaration is
//     the body of a file: package clause and imports are added.
//   - Anything else is a function body: it runs inside
//     func _() error { ...; return nil }.
//
// Every block sees the imports in defaultImports (unused ones are fine)
// and the package-level variables in context (so a fragment may use ctx,
// node, peer... without declaring them, and may also declare its own).
// An HTML comment on the line before the fence adds declarations for one
// block, invisible on the rendered page:
//
//	<!-- doccheck: import msgs "github.com/cask-p2p/cask/examples/messages/greetpb"; var greeter *actor.PID -->
//
// Errors about unused variables and imports are ignored: a fragment shows
// one step, not a whole program.

var defaultImports = map[string]string{
	"context":    "context",
	"errors":     "errors",
	"fmt":        "fmt",
	"io":         "io",
	"log":        "log",
	"slog":       "log/slog",
	"net":        "net",
	"os":         "os",
	"strings":    "strings",
	"sync":       "sync",
	"testing":    "testing",
	"time":       "time",
	"actor":      "github.com/asynkron/protoactor-go/actor",
	"proto":      "google.golang.org/protobuf/proto",
	"wrapperspb": "google.golang.org/protobuf/types/known/wrapperspb",
	"actors":     "github.com/cask-p2p/cask/actors",
	"testkit":    "github.com/cask-p2p/cask/actors/testkit",
	"dist":       "github.com/cask-p2p/cask/dist",
	"membership": "github.com/cask-p2p/cask/membership",
	"pathstats":  "github.com/cask-p2p/cask/pathstats",
	"transport":  "github.com/cask-p2p/cask/transport",
	"adapter":    "github.com/cask-p2p/cask/transport/adapter",
	"identity":   "github.com/cask-p2p/cask/transport/identity",
	"watchdog":   "github.com/cask-p2p/cask/examples/watchdog/watchdog",
}

const context_ = `
var (
	ctx        context.Context
	node, a, b *actors.Node
	peer       string
	pid        *actor.PID
	t          *testing.T
)
`

type block struct {
	file      string
	line      int
	code      string
	directive string
}

var directiveRE = regexp.MustCompile(`^<!--\s*doccheck:\s*(.*?)\s*-->\s*$`)

func blocks(t *testing.T, root string) []block {
	files := []string{filepath.Join(root, "README.md")}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, docs...)
	var out []block
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		sc := bufio.NewScanner(bytes.NewReader(body))
		var (
			lineNo    int
			prev      string
			in        bool
			cur       block
			collected []string
		)
		for sc.Scan() {
			lineNo++
			line := sc.Text()
			switch {
			case !in && strings.TrimSpace(line) == "```go":
				in = true
				cur = block{file: rel, line: lineNo + 1}
				if m := directiveRE.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
					cur.directive = m[1]
				}
				collected = nil
			case in && strings.TrimSpace(line) == "```":
				in = false
				cur.code = strings.Join(collected, "\n")
				out = append(out, cur)
			case in:
				collected = append(collected, line)
			}
			prev = line
		}
		if in {
			t.Errorf("%s: unclosed ```go block at line %d", rel, cur.line-1)
		}
	}
	return out
}

var topLevelRE = regexp.MustCompile(`(?m)^(func|type|var|const) `)

// source turns a block into a Go file and returns it with the number of
// lines added before the block's first line.
func (b block) source() (src string, offset int) {
	imports := map[string]string{}
	for k, v := range defaultImports {
		imports[k] = v
	}
	var decls []string
	for _, d := range strings.Split(b.directive, ";") {
		d = strings.TrimSpace(d)
		switch {
		case d == "":
		case strings.HasPrefix(d, "import "):
			f := strings.Fields(strings.TrimPrefix(d, "import "))
			path, _ := strconv.Unquote(f[len(f)-1])
			name := filepath.Base(path)
			if len(f) == 2 {
				name = f[0]
			}
			imports[name] = path
		default:
			decls = append(decls, d)
		}
	}
	trimmed := strings.TrimSpace(b.code)
	if strings.HasPrefix(trimmed, "package ") || strings.HasPrefix(trimmed, "//") && strings.Contains(trimmed, "\npackage ") {
		return b.code + "\n", 0
	}
	var head strings.Builder
	head.WriteString("package doc\n\nimport (\n")
	for name, path := range imports {
		fmt.Fprintf(&head, "\t%s %q\n", name, path)
	}
	head.WriteString(")\n")
	head.WriteString(context_)
	for _, d := range decls {
		head.WriteString(d + "\n")
	}
	if topLevelRE.MatchString(b.code) {
		h := head.String() + "\n"
		return h + b.code + "\n", strings.Count(h, "\n")
	}
	h := head.String() + "\nfunc _() error {\n"
	return h + b.code + "\n\treturn nil\n}\n", strings.Count(h, "\n")
}

func ignorable(msg string) bool {
	return strings.Contains(msg, "declared and not used") || strings.Contains(msg, "imported and not used")
}

func TestDocCodeBlocksCompile(t *testing.T) {
	root := filepath.Join("..", "..")
	bs := blocks(t, root)
	if len(bs) < 10 {
		t.Fatalf("found only %d Go blocks; is the test looking at the repository?", len(bs))
	}
	paths := map[string]bool{}
	for _, p := range defaultImports {
		paths[p] = true
	}
	for _, b := range bs {
		for _, d := range strings.Split(b.directive, ";") {
			if d = strings.TrimSpace(d); strings.HasPrefix(d, "import ") {
				f := strings.Fields(d)
				p, _ := strconv.Unquote(f[len(f)-1])
				paths[p] = true
			}
		}
	}
	exports := exportData(t, paths)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	for _, b := range bs {
		src, offset := b.source()
		f, err := parser.ParseFile(fset, b.file, src, parser.AllErrors)
		if err != nil {
			t.Errorf("%s:%d: the Go block does not parse: %v", b.file, b.line, shift(err.Error(), b, offset))
			continue
		}
		var errs []string
		conf := types.Config{Importer: imp, Error: func(err error) {
			if te, ok := err.(types.Error); ok && !ignorable(te.Msg) {
				p := fset.Position(te.Pos)
				errs = append(errs, fmt.Sprintf("%s:%d: %s", b.file, b.line+p.Line-1-offset, te.Msg))
			}
		}}
		_, _ = conf.Check("doc", fset, []*ast.File{f}, nil)
		for _, e := range errs {
			t.Error(e)
		}
	}
}

// shift rewrites "file:L:C" positions in a parse error to the block's
// lines in the Markdown file.
func shift(msg string, b block, offset int) string {
	re := regexp.MustCompile(regexp.QuoteMeta(b.file) + `:(\d+):(\d+)`)
	return re.ReplaceAllStringFunc(msg, func(m string) string {
		s := re.FindStringSubmatch(m)
		l, _ := strconv.Atoi(s[1])
		return fmt.Sprintf("%s:%d:%s", b.file, b.line+l-1-offset, s[2])
	})
}

// exportData builds (or finds in the build cache) the export data of
// every package the blocks may import, and of their dependencies.
func exportData(t *testing.T, paths map[string]bool) map[string]string {
	args := []string{"list", "-export", "-deps", "-f", "{{.ImportPath}}={{.Export}}"}
	for p := range paths {
		args = append(args, p)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -export: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && v != "" {
			m[k] = v
		}
	}
	return m
}
