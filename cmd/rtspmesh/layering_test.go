package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/rtspmesh/rtspmesh/"

// allowed lists, for each top-level package, the top-level packages of this
// module it may import: cmd → node → {rtspedge, mesh} → store.
var allowed = map[string][]string{
	"cmd":      {"node", "rtspedge", "mesh", "store", "cmd"},
	"node":     {"node", "rtspedge", "mesh", "store"},
	"rtspedge": {"rtspedge", "store"},
	"mesh":     {"mesh", "store"},
	"store":    {"store"},
	"internal": {"internal"}, // test kits: imported by tests only (below)
}

// forbidden lists third-party imports a layer must not use.
var forbidden = map[string][]string{
	"store":    {"github.com/libp2p/", "github.com/bluenviron/"},
	"rtspedge": {"github.com/libp2p/"},
	"mesh":     {"github.com/bluenviron/"},
}

func TestImportsRunOneWay(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		layer := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		ok, known := allowed[layer]
		if !known {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			checked++
			for _, bad := range forbidden[layer] {
				if strings.HasPrefix(p, bad) {
					t.Errorf("%s imports %s: package %s must not depend on it", rel, p, layer)
				}
			}
			if !strings.HasPrefix(p, module) {
				continue
			}
			target := strings.SplitN(strings.TrimPrefix(p, module), "/", 2)[0]
			if target == "internal" {
				if !strings.HasSuffix(path, "_test.go") {
					t.Errorf("%s imports %s: only tests may import the test kits under internal/", rel, p)
				}
				continue
			}
			if !contains(ok, target) {
				t.Errorf("%s imports %s: %s may import only %v", rel, p, layer, ok)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no imports checked: the walk found no Go files")
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
