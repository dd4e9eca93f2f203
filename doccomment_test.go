package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

// TestMainDocComments: each documented function of main.go has a doc
// comment that opens with its own name (go doc shows it), not another
// function's.
func TestMainDocComments(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Doc == nil {
			continue
		}
		if first := fd.Doc.Text(); !strings.HasPrefix(first, fd.Name.Name+" ") {
			t.Errorf("%s's doc comment opens %q", fd.Name.Name, strings.SplitN(first, "\n", 2)[0])
		}
	}
}
