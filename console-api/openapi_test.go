package consoleapi_test

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
)

type openAPIDoc struct {
	OpenAPI    string                                 `yaml:"openapi"`
	Paths      map[string]map[string]openAPIOperation `yaml:"paths"`
	Components struct {
		Parameters map[string]openAPIParam `yaml:"parameters"`
		Schemas    map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type openAPIOperation struct {
	OperationID string              `yaml:"operationId"`
	Parameters  []openAPIParam      `yaml:"parameters"`
	Responses   map[string]any      `yaml:"responses"`
	Security    *[]map[string][]any `yaml:"security"`
}

type openAPIParam struct {
	Ref      string `yaml:"$ref"`
	Name     string `yaml:"name"`
	In       string `yaml:"in"`
	Required bool   `yaml:"required"`
}

func loadOpenAPI(t *testing.T) (openAPIDoc, []byte) {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	var doc openAPIDoc
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	require.Equal(t, "3.0.3", doc.OpenAPI)
	return doc, raw
}

var ginParam = regexp.MustCompile(`:([A-Za-z]+)`)

// TestOpenAPIMatchesRoutes: every registered route is documented, with the
// same path and query parameters, and nothing else is.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	registered := map[string]consoleapi.Route{}
	for _, r := range consoleapi.Routes() {
		registered[strings.ToLower(r.Method)+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = r
	}
	documented := map[string]openAPIOperation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[method+" "+path] = op
		}
	}
	require.ElementsMatch(t, keys(registered), keys(documented), "routes and openapi.yaml disagree")

	ids := map[string]bool{}
	for key, r := range registered {
		op := documented[key]
		require.NotEmpty(t, op.OperationID, key)
		require.False(t, ids[op.OperationID], "operationId %s is repeated", op.OperationID)
		ids[op.OperationID] = true
		require.True(t, slices.ContainsFunc([]string{"200", "201", "204"}, func(c string) bool { _, ok := op.Responses[c]; return ok }),
			"%s documents no success answer", key)
		require.Contains(t, op.Responses, "400", key, "every route refuses unknown parameters")
		if r.Public {
			require.NotNil(t, op.Security, "%s: a public route says security: []", key)
			require.Empty(t, *op.Security, key)
		} else {
			require.Nil(t, op.Security, "%s: uses the document's bearer security", key)
			require.Contains(t, op.Responses, "401", key)
			require.Contains(t, op.Responses, "403", key)
		}
		var query, path []string
		for _, p := range op.Parameters {
			if p.Ref != "" {
				name := strings.TrimPrefix(p.Ref, "#/components/parameters/")
				def, ok := doc.Components.Parameters[name]
				require.True(t, ok, "%s: dangling %s", key, p.Ref)
				p = def
			}
			switch p.In {
			case "query":
				query = append(query, p.Name)
			case "path":
				require.True(t, p.Required, "%s: path parameter %s", key, p.Name)
				path = append(path, p.Name)
			default:
				t.Fatalf("%s: parameter %s in %q", key, p.Name, p.In)
			}
		}
		require.ElementsMatch(t, r.Params, query, "%s: query parameters", key)
		var want []string
		for _, m := range ginParam.FindAllStringSubmatch(r.Path, -1) {
			want = append(want, m[1])
		}
		require.ElementsMatch(t, want, path, "%s: path parameters", key)
	}
}

func TestOpenAPIErrorCodes(t *testing.T) {
	doc, raw := loadOpenAPI(t)
	enum := doc.Components.Schemas["Error"].Properties["error"].Properties["code"].Enum
	require.ElementsMatch(t, consoleapi.ErrorCodes, enum)
	// Every $ref points at something.
	for _, m := range regexp.MustCompile(`\$ref: "#/components/([a-z]+)/([A-Za-z]+)"`).FindAllStringSubmatch(string(raw), -1) {
		require.Contains(t, string(raw), "\n    "+m[2]+":", "dangling $ref %s/%s", m[1], m[2])
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, func(o *consoleapi.Options) { o.Open = false }) // public even when everything else is closed
	_, raw := loadOpenAPI(t)
	res, err := http.Get(e.base + "/openapi.yaml")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, raw, body)
	require.Equal(t, raw, consoleapi.OpenAPI())
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return slices.Clip(out)
}
