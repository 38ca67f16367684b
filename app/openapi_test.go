package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/stretchr/testify/require"

	consoleapi "github.com/pulsar-sidecar/pulsar-sidecar/console-api"
	"github.com/pulsar-sidecar/pulsar-sidecar/openapi"
)

// The OpenAPI documents of every HTTP API, loaded once: the data plane's
// and the console's. Every JSON answer the end-to-end tests of this
// package receive through the harness is validated against them
// (validatingTransport).
var (
	specsOnce sync.Once
	specs     []routers.Router
	specsErr  error
)

func loadSpecs() ([]routers.Router, error) {
	specsOnce.Do(func() {
		for i, doc := range [][]byte{openapi.DataPlane(), consoleapi.OpenAPI()} {
			loader := openapi3.NewLoader()
			d, err := loader.LoadFromData(doc)
			if err != nil {
				specsErr = err
				return
			}
			if err := d.Validate(context.Background()); err != nil {
				specsErr = err
				return
			}
			d.Servers = nil // the paths are matched on any host
			if i == 1 {
				// The console's paths are relative to its server URL,
				// which kin-openapi's router matches only when absolute:
				// route on the full paths instead.
				full := openapi3.NewPaths()
				for p, item := range d.Paths.Map() {
					full.Set(consoleapi.Prefix+p, item)
				}
				d.Paths = full
			}
			r, err := legacy.NewRouter(d)
			if err != nil {
				specsErr = err
				return
			}
			specs = append(specs, r)
		}
	})
	return specs, specsErr
}

// validatingTransport checks every JSON answer against the OpenAPI
// documents: its route and status must be documented and its body must
// match the schema. A mismatch fails the test.
type validatingTransport struct {
	t    testing.TB
	base http.RoundTripper
}

func (v validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := v.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		return res, err
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		return nil, err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	if verr := validateAnswer(req, res, body); verr != nil {
		v.t.Errorf("OpenAPI: %s %s answered %d: %v\nbody: %.600s", req.Method, req.URL.Path, res.StatusCode, verr, body)
	}
	return res, nil
}

func validateAnswer(req *http.Request, res *http.Response, body []byte) error {
	routers, err := loadSpecs()
	if err != nil {
		return fmt.Errorf("loading the documents: %w", err)
	}
	for _, r := range routers {
		route, params, err := r.FindRoute(req)
		if err != nil {
			continue
		}
		in := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
			Status: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(body)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		return openapi3filter.ValidateResponse(req.Context(), in)
	}
	// No document has the route: only the routers' own answers to
	// unknown paths and methods may come from there.
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Error.Code == "NOT_FOUND" || e.Error.Code == "METHOD_NOT_ALLOWED") {
		return nil
	}
	return errors.New("no OpenAPI document describes this route")
}

// TestOpenAPIDocumentsServed: the binary serves both documents, and each
// is a valid OpenAPI document.
func TestOpenAPIDocumentsServed(t *testing.T) {
	_, err := loadSpecs()
	require.NoError(t, err)
	h := startApp(t, nil)
	for path, want := range map[string][]byte{"/openapi.yaml": openapi.DataPlane(), "/console/v1/openapi.yaml": consoleapi.OpenAPI()} {
		r := h.do(http.MethodGet, path, nil, nil)
		require.Equal(t, http.StatusOK, r.Status, path)
		require.Equal(t, string(want), r.Raw, path)
	}
}

// TestOpenAPIValidationFails: the validator is not a check that cannot
// fail: an answer off its schema, an undocumented status and an
// undocumented route are each caught.
func TestOpenAPIValidationFails(t *testing.T) {
	answer := func(method, path string, status int, body string) error {
		req, err := http.NewRequest(method, "http://127.0.0.1:1"+path, nil)
		require.NoError(t, err)
		res := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}}
		return validateAnswer(req, res, []byte(body))
	}
	require.NoError(t, answer("POST", "/v1/topics/a/b/c/subscriptions/s/ack", 200, `{"acked":1,"ignored":0}`))
	require.Error(t, answer("POST", "/v1/topics/a/b/c/subscriptions/s/ack", 200, `{"acked":"one","ignored":0}`))
	require.Error(t, answer("POST", "/v1/topics/a/b/c/subscriptions/s/ack", 200, `{"ignored":0}`))
	require.Error(t, answer("POST", "/v1/topics/a/b/c/subscriptions/s/ack", 418, `{"error":{"code":"X","message":"m"}}`))
	require.NoError(t, answer("GET", "/console/v1/messages/u", 404, `{"error":{"code":"MESSAGE_NOT_FOUND","message":"m"}}`))
	require.Error(t, answer("GET", "/console/v1/messages/u", 200, `{"uid":"u"}`))
	require.Error(t, answer("GET", "/v1/undocumented", 200, `{}`))
	require.NoError(t, answer("GET", "/v1/undocumented", 404, `{"error":{"code":"NOT_FOUND","message":"m"}}`))
}
