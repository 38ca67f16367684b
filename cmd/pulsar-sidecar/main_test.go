package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunExitCodes(t *testing.T) {
	assert.Equal(t, 0, run([]string{"hash-token", "abc"}))
	assert.Equal(t, 2, run([]string{"hash-token", "a", "b"}))
	assert.Equal(t, 0, run([]string{"--help"}))
	assert.Equal(t, 2, run([]string{"--listen", "0.0.0.0:8088"}), "no apps on a public listener")
	assert.Equal(t, 2, run([]string{"--no-such-flag"}))
	bad := filepath.Join(t.TempDir(), "c.yaml")
	assert.NoError(t, os.WriteFile(bad, []byte("listne: x\n"), 0o600))
	assert.Equal(t, 2, run([]string{"--config", bad}))
}

func TestVersion(t *testing.T) {
	assert.Equal(t, 0, run([]string{"--version"}))
	assert.Equal(t, 0, run([]string{"version"}))
	assert.Equal(t, 0, run([]string{"--log-level", "debug", "--version"}), "--version anywhere among the flags")
	assert.False(t, wantsVersion([]string{"--", "--version"}))
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.WriteHeader(status)
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	noEnv := func(string) (string, bool) { return "", false }
	// The sidecar's own listen setting says where to probe; all interfaces
	// are probed on loopback. Apps are required on such a listener.
	cfgFile := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("apps: [{name: a, tokenSHA256: "+
		"'2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae', produce: ['*']}]\n"), 0o600))
	env := func(k string) (string, bool) {
		switch k {
		case "PSC_LISTEN":
			return "0.0.0.0:" + port, true
		case "PSC_CONFIG":
			return cfgFile, true
		}
		return "", false
	}
	type hcCase struct {
		name   string
		args   []string
		env    func(string) (string, bool)
		status int
		want   int
	}
	tests := []hcCase{
		{"from the environment", nil, env, http.StatusOK, 0},
		{"readiness by path", []string{"--path", "/readyz"}, env, http.StatusOK, 1},
		{"explicit url", []string{"--url", srv.URL + "/healthz"}, noEnv, http.StatusOK, 0},
		{"not 200", []string{"--url", srv.URL + "/healthz"}, noEnv, http.StatusServiceUnavailable, 1},
		{"nobody listens", []string{"--url", "http://127.0.0.1:1/healthz", "--timeout", "1s"}, noEnv, http.StatusOK, 1},
		{"bad flag", []string{"--nope"}, noEnv, http.StatusOK, 2},
		{"stray argument", []string{"x"}, noEnv, http.StatusOK, 2},
		{"invalid configuration", nil, func(k string) (string, bool) {
			if k == "PSC_LISTEN" {
				return "0.0.0.0:" + port, true // no apps: the sidecar would refuse it too
			}
			return "", false
		}, http.StatusOK, 2},
	}
	// The management listener answers the probes when there is one; a TLS
	// data plane is probed over https.
	tlsSrv := httptest.NewTLSServer(srv.Config.Handler)
	t.Cleanup(tlsSrv.Close)
	_, tlsPort, err := net.SplitHostPort(tlsSrv.Listener.Addr().String())
	require.NoError(t, err)
	tests = append(tests, hcCase{"management listener", nil, func(k string) (string, bool) {
		switch k {
		case "PSC_LISTEN":
			return "127.0.0.1:1", true // nobody: the probe must not go there
		case "PSC_MANAGEMENT_LISTEN":
			return "0.0.0.0:" + port, true
		}
		return "", false
	}, http.StatusOK, 0}, hcCase{"https data plane", nil, func(k string) (string, bool) {
		switch k {
		case "PSC_LISTEN":
			return "127.0.0.1:" + tlsPort, true
		case "PSC_HTTP_TLS_CERT_FILE", "PSC_HTTP_TLS_KEY_FILE":
			return "/not/read/by/the/probe", true
		}
		return "", false
	}, http.StatusOK, 0})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status = tt.status
			var out, errOut bytes.Buffer
			got := healthcheck(tt.args, tt.env, &out, &errOut)
			assert.Equal(t, tt.want, got, "stdout %q stderr %q", out.String(), errOut.String())
		})
	}
}

func TestProbeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:8088":   "127.0.0.1:8088",
		"[::]:8088":      "127.0.0.1:8088",
		":8088":          "127.0.0.1:8088",
		"10.0.0.5:8088":  "10.0.0.5:8088",
		"127.0.0.1:9000": "127.0.0.1:9000",
		"localhost:80":   "localhost:80",
	} {
		assert.Equal(t, want, probeAddr(in), in)
	}
}
