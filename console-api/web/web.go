// Package web is the console's web page (issue 15): plain HTML, CSS and
// JavaScript modules embedded in the binary, served at /console/. There is
// no build step and the page fetches nothing but its own files and the
// console API (/console/v1) on the same origin; its Content-Security-Policy
// says so to the browser.
//
// The app mounts Handler at Prefix ("/console/"), so the page lives beside
// the API under /console/v1.
package web

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// Prefix is where the page is served.
const Prefix = "/console/"

//go:embed static
var static embed.FS

// Files are the page's files: index.html and assets/.
func Files() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}

// CSP is the page's Content-Security-Policy: its own scripts, styles and
// API only; no inline script, no other origin, no framing.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the page: GET or HEAD of /console/ is index.html, of
// /console/assets/NAME an asset; anything else under Prefix is 404.
func Handler() http.Handler {
	files := Files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, strings.TrimSuffix(Prefix, "/"))
		switch {
		case name == "/" || name == "" || name == "/index.html":
			name = "index.html"
		case strings.HasPrefix(name, "/assets/") && path.Clean(name) == name:
			name = name[1:]
		default:
			http.NotFound(w, r)
			return
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		ct := mime.TypeByExtension(path.Ext(name))
		if strings.HasSuffix(name, ".js") {
			ct = "text/javascript; charset=utf-8" // modules need a JavaScript type whatever the system's mime table says
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache") // a new binary's page is seen at once
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body) //nolint:gosec // body is one of the embedded files; the path only picks which
		}
	})
}
