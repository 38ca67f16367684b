// Command pulsar-sidecar is the HTTP proxy and sidecar in front of Apache
// Pulsar. With no configuration it runs the embedded mode: an in-process
// broker and Redis, HTTP on 127.0.0.1:8088. See the README.
//
//	pulsar-sidecar [flags]              run (pulsar-sidecar --help lists the flags)
//	pulsar-sidecar --version            print the version, revision and Go version
//	pulsar-sidecar hash-token [token]   print the SHA-256 to put in apps[].tokenSHA256
//	pulsar-sidecar healthcheck [flags]  probe a running sidecar's /healthz (for images without a shell)
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pulsar-sidecar/pulsar-sidecar/app"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
	"github.com/pulsar-sidecar/pulsar-sidecar/internal/version"
	"github.com/pulsar-sidecar/pulsar-sidecar/proxy"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "hash-token":
			return hashToken(args[1:])
		case "healthcheck":
			return healthcheck(args[1:], os.LookupEnv, os.Stdout, os.Stderr)
		case "version":
			fmt.Println(version.Get())
			return 0
		}
	}
	if wantsVersion(args) {
		fmt.Println(version.Get())
		return 0
	}
	cfg, err := config.Load(args, os.LookupEnv, os.Stderr)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pulsar-sidecar:", err)
		return 2
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP re-reads the secret files (tokens, the HTTP certificate) at once.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := app.Run(ctx, cfg, app.WithLogger(log), app.WithReloadSignal(hup)); err != nil {
		log.Error("pulsar-sidecar failed", "err", err)
		return 1
	}
	return 0
}

// wantsVersion reports whether --version (or -version) is among the flags,
// wherever it stands, so `pulsar-sidecar --config x.yaml --version` prints
// the version instead of starting.
func wantsVersion(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "--version", "-version", "--version=true", "-version=true":
			return true
		}
	}
	return false
}

func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	o := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, o))
}

// hashToken prints the hex SHA-256 of a token given as argument or, better
// (it stays out of the shell history), on standard input.
func hashToken(args []string) int {
	var token string
	switch len(args) {
	case 0:
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			fmt.Fprintln(os.Stderr, "pulsar-sidecar hash-token: give the token as argument or on standard input")
			return 2
		}
		token = strings.TrimRight(line, "\r\n")
	case 1:
		token = args[0]
	default:
		fmt.Fprintln(os.Stderr, "usage: pulsar-sidecar hash-token [token]")
		return 2
	}
	if token == "" {
		fmt.Fprintln(os.Stderr, "pulsar-sidecar hash-token: empty token")
		return 2
	}
	fmt.Println(proxy.HashToken(token))
	return 0
}
