package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

// healthcheck probes a running sidecar's /healthz (or --path, such as
// /readyz) and exits 0 when it answers 200, 1 otherwise (2 for bad usage).
// It exists for images without a shell or curl (distroless, scratch): a
// container runtime's HEALTHCHECK runs `pulsar-sidecar healthcheck`, and so
// can a Kubernetes exec probe when the sidecar listens on loopback only,
// where the kubelet's HTTP probes cannot reach it. Without --url it probes
// the address the sidecar itself would listen on, from the same PSC_*
// environment and --config/PSC_CONFIG file, with an unspecified host
// (0.0.0.0, ::) probed on loopback.
func healthcheck(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pulsar-sidecar healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "URL to probe (default: /healthz on management.listen, else on listen (https with http.tlsCertFile), from the sidecar's configuration)")
	path := fs.String("path", "/healthz", "path to probe when --url is not given (/readyz for readiness)")
	configPath := fs.String("config", "", "the sidecar's YAML configuration file, to find its listen address (also PSC_CONFIG)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "pulsar-sidecar healthcheck: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	target := *url
	if target == "" {
		var cargs []string
		if *configPath != "" {
			cargs = []string{"--config", *configPath}
		}
		cfg, err := config.Load(cargs, getenv, io.Discard)
		if err != nil {
			_, _ = fmt.Fprintln(stderr, "pulsar-sidecar healthcheck:", err)
			return 2
		}
		target = probeURL(cfg) + *path
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pulsar-sidecar healthcheck:", err)
		return 2
	}
	// The probe asks the sidecar on this host whether it is up and sends
	// nothing secret: the data plane's certificate names the service, not
	// the loopback address probed, so it is not verified.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // see above
	resp, err := client.Do(req)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "pulsar-sidecar healthcheck: unhealthy:", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		_, _ = fmt.Fprintf(stderr, "pulsar-sidecar healthcheck: unhealthy: %s answered %s\n", target, resp.Status)
		return 1
	}
	_, _ = fmt.Fprintf(stdout, "healthy: %s answered %s\n", target, resp.Status)
	return 0
}

// probeURL is where the sidecar answers its probes: the management
// listener when there is one, else the data plane (https:// with
// http.tlsCertFile).
func probeURL(cfg config.Config) string {
	switch {
	case cfg.Management.Listen != "":
		return "http://" + probeAddr(cfg.Management.Listen)
	case cfg.HTTP.TLSCertFile != "":
		return "https://" + probeAddr(cfg.Listen)
	}
	return "http://" + probeAddr(cfg.Listen)
}

// probeAddr turns a listen address into one to connect to: an unspecified
// host (all interfaces) is reached on loopback.
func probeAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
