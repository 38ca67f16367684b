// Package openapi holds the OpenAPI document of the data plane (produce,
// delay, consume and the operations endpoints), served by the binary at
// GET /openapi.yaml. The console's document is console-api/openapi.yaml,
// at /console/v1/openapi.yaml. Both are linted by `make openapi-lint`, and
// the end-to-end tests (app) validate every JSON answer against them.
package openapi

import (
	_ "embed" // the document
	"net/http"
)

//go:embed data-plane.yaml
var dataPlane []byte

// Path is where the binary serves DataPlane.
const Path = "/openapi.yaml"

// DataPlane returns the data plane's OpenAPI document (YAML).
func DataPlane() []byte { return dataPlane }

// Handler serves DataPlane.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(dataPlane)
	})
}
