package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pulsar-sidecar/pulsar-sidecar/console-api/web"
)

func get(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	require.NoError(t, err)
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, string(b)
}

// TestHandlerServesThePage: the index and every asset are served with the
// page's security headers and a JavaScript type for modules; paths outside
// the page are 404 and writes 405.
func TestHandlerServesThePage(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()

	res, body := get(t, srv, http.MethodGet, "/console/")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, web.CSP, res.Header.Get("Content-Security-Policy"))
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	require.Contains(t, body, `<script type="module" src="/console/assets/app.js">`)

	n := 0
	require.NoError(t, fs.WalkDir(web.Files(), "assets", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		n++
		res, body := get(t, srv, http.MethodGet, "/console/"+p)
		require.Equal(t, http.StatusOK, res.StatusCode, p)
		require.NotEmpty(t, body, p)
		switch {
		case strings.HasSuffix(p, ".js"):
			require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"), p)
		case strings.HasSuffix(p, ".css"):
			require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "text/css"), p)
		}
		return nil
	}))
	require.GreaterOrEqual(t, n, 3)

	res, body = get(t, srv, http.MethodHead, "/console/assets/app.js")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Empty(t, body)

	for _, p := range []string{"/console/web.go", "/console/assets/../web.go", "/console/assets/nope.js", "/console/static/index.html", "/console/assets/"} {
		res, _ := get(t, srv, http.MethodGet, p)
		require.Equal(t, http.StatusNotFound, res.StatusCode, p)
	}
	res, _ = get(t, srv, http.MethodPost, "/console/")
	require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

// TestNoNetworkFetches: the page names no other origin (the CSP would
// block it anyway) and imports only its own modules.
func TestNoNetworkFetches(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	imports := regexp.MustCompile(`from "([^"]+)"`)
	require.NoError(t, fs.WalkDir(web.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		b, err := fs.ReadFile(web.Files(), p)
		require.NoError(t, err)
		require.Empty(t, external.FindAllString(string(b), -1), "%s names another origin", p)
		for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
			require.True(t, strings.HasPrefix(m[1], "./"), "%s imports %s", p, m[1])
			_, err := fs.Stat(web.Files(), "assets/"+strings.TrimPrefix(m[1], "./"))
			require.NoError(t, err, "%s imports a missing %s", p, m[1])
		}
		return nil
	}))
}
