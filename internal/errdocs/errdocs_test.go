// Package errdocs holds the test that keeps docs/errors.md equal to the
// APIs' error catalogues, and the catalogues equal to the code constants of
// their packages. Run with UPDATE_ERRORS_DOC=1 to write docs/errors.md
// from the catalogues.
package errdocs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/consume"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/apierr"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

const docPath = "../../docs/errors.md"

const intro = `# Error codes

<!-- Made from the catalogues in proxy/catalogue.go, consume/catalogue.go and
console-api/catalogue.go by internal/errdocs (UPDATE_ERRORS_DOC=1 go test ./internal/errdocs);
edit those, not this page. -->

Every API of the sidecar answers an error the same way: an HTTP status and a JSON body
` + "`" + `{"error":{"code":"STABLE_CODE","message":"what went wrong"}}` + "`" + `. Switch on the code, never on
the message: a code is never renamed or reused, and means the same in every API that answers it.
` + "`" + `Retry-After` + "`" + ` comes with the answers that say to wait; a 401 carries ` + "`" + `WWW-Authenticate: Bearer` + "`" + `.
Every error answer is counted in ` + "`" + `psc_http_errors_total{code}` + "`" + `; 5xx answers are logged with their
cause, which the answer never shows.
`

var catalogues = []struct {
	dir   string
	cat   apierr.Catalogue
	table apierr.Table
}{
	{"../../proxy", proxy.Catalogue, proxy.ErrorTable},
	{"../../consume", consume.Catalogue, consume.ErrorTable},
	{"../../console-api", consoleapi.Catalogue, consoleapi.ErrorTable},
}

// TestErrorsDoc: docs/errors.md is exactly what the catalogues make.
func TestErrorsDoc(t *testing.T) {
	cats := make([]apierr.Catalogue, len(catalogues))
	for i, c := range catalogues {
		cats[i] = c.cat
	}
	want := apierr.Markdown(intro, cats...)
	if os.Getenv("UPDATE_ERRORS_DOC") != "" {
		require.NoError(t, os.WriteFile(docPath, []byte(want), 0o644))
	}
	got, err := os.ReadFile(docPath)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "docs/errors.md differs from the catalogues: UPDATE_ERRORS_DOC=1 go test ./internal/errdocs")
}

// TestCataloguesListEveryCode: each package's Code* constants and its
// catalogue's codes are the same set, no row is listed twice, and every
// answer of the package's error table is a row.
func TestCataloguesListEveryCode(t *testing.T) {
	shared := codeConstants(t, "../apierr", nil)
	require.NotEmpty(t, shared)
	for _, c := range catalogues {
		t.Run(filepath.Base(c.dir), func(t *testing.T) {
			consts := codeConstants(t, c.dir, shared)
			require.NotEmpty(t, consts)
			listed := map[string]bool{}
			rows := map[string]bool{}
			for _, x := range c.cat.Codes {
				listed[x.Code] = true
				row := strconv.Itoa(x.Status) + " " + x.Code
				assert.False(t, rows[row], "%s listed twice", row)
				rows[row] = true
				assert.NotEmpty(t, x.Meaning, row)
				assert.NotEmpty(t, x.Fix, row)
				assert.GreaterOrEqual(t, x.Status, 400, row)
			}
			for _, r := range c.table {
				assert.True(t, c.cat.Has(r.Status, r.Code), "the error table answers %d %s, which the catalogue does not list", r.Status, r.Code)
			}
			for name, code := range consts {
				assert.True(t, listed[code], "%s (%s) is not in the catalogue", name, code)
			}
			values := map[string]bool{}
			for _, code := range consts {
				values[code] = true
			}
			for code := range listed {
				assert.True(t, values[code], "the catalogue lists %s, which is no constant of the package", code)
			}
		})
	}
}

// codeConstants reads the string constants named Code* of the package in
// dir (not its tests): a literal, or a reference to one of shared
// (apierr.CodeX).
func codeConstants(t *testing.T, dir string, shared map[string]string) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	out := map[string]string{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						if v.Kind == token.STRING {
							s, err := strconv.Unquote(v.Value)
							require.NoError(t, err)
							out[n.Name] = s
						}
					case *ast.SelectorExpr:
						s, ok := shared[v.Sel.Name]
						require.True(t, ok, "%s = %s.%s: not a shared code", n.Name, v.X, v.Sel.Name)
						out[n.Name] = s
					}
				}
			}
		}
	}
	return out
}
