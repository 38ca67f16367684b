# Common loops. `make run` starts the embedded mode; `make test` is what CI runs.
GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: run test lint openapi-lint bench fuzz minipulsar build build-bin image image-offline image-check chart-test chart-rules

# What the binary and the image say for --version and psc_build_info.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
VERSION_PKG := github.com/pulsar-sidecar/pulsar-sidecar/internal/version
LDFLAGS := -s -w -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).revision=$(REVISION)

# The image; base images are build arguments so a mirror can be used.
PODMAN ?= podman
IMAGE ?= localhost/pulsar-sidecar:dev
GO_IMAGE ?= docker.io/library/golang:1.26
RUNTIME_IMAGE ?= gcr.io/distroless/static-debian12:nonroot
IMAGE_BUILD_FLAGS ?=

run:
	$(GO) run ./cmd/pulsar-sidecar

minipulsar:
	$(GO) run ./cmd/minipulsar

build:
	$(GO) build ./...

# A static, stamped binary in bin/, as the image has it.
build-bin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/pulsar-sidecar ./cmd/pulsar-sidecar

# The image from public base images (needs a registry; see GO_IMAGE and
# RUNTIME_IMAGE to use a mirror). --format docker keeps the HEALTHCHECK.
image:
	$(PODMAN) build --format docker -t $(IMAGE) \
	  --build-arg GO_IMAGE=$(GO_IMAGE) --build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE) \
	  --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  $(IMAGE_BUILD_FLAGS) .

# The same image with no registry at all: local stand-ins for both base
# images (.ci/image-bases), this machine's module cache as the only module
# source and its build cache reused, so a rebuild takes seconds.
image-offline:
	.ci/image-bases
	$(MAKE) image GO_IMAGE=localhost/psc-golang:local RUNTIME_IMAGE=localhost/psc-static:local \
	  IMAGE_BUILD_FLAGS="--pull=never --isolation=chroot --build-arg GOPROXY=off -v $$($(GO) env GOMODCACHE):/go/pkg/mod -v $$($(GO) env GOCACHE):/root/.cache/go-build"

# Checks the built image without running a container (podman run needs
# cgroups this CI does not have): static binary, non-root user, /healthz.
image-check:
	.ci/image-check $(IMAGE)

# helm lint, helm template of every shape decoded into k8s.io/api types,
# promtool on the rendered PrometheusRule (skips what is not installed).
chart-test:
	$(GO) test -count=1 ./charts/

# The chart's PrometheusRule reads a copy of the rules (Helm reads only files
# inside the chart); docs/alerts is the source, the chart test checks the copy.
chart-rules:
	cp docs/alerts/pulsar-sidecar.rules.yml charts/pulsar-sidecar/files/pulsar-sidecar.rules.yml

# The second line runs the fault tests that kill brokers under load without
# -race (files tagged !race): pulsar-client-go v0.19 races on its own
# reconnect paths, which the race detector would report. The third runs the
# broker conformance suite again with a data directory and a one-byte entry
# cache, so every delivery reads the entry back from disk.
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./app/ ./durable/
	MINIPULSAR_CONFORMANCE_DATADIR=1 $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./minipulsar/conformance

# Installs the pinned golangci-lint when it is missing.
GOLANGCI_LINT_VERSION ?= v2.15.0
lint: openapi-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@command -v golangci-lint >/dev/null 2>&1 || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" golangci-lint run ./...

# The OpenAPI documents against Redocly's recommended rules (redocly.yaml):
# zero errors and warnings. The CLI comes from npm, pinned.
REDOCLY ?= npx --yes @redocly/cli@2.77.0
OPENAPI_DOCS := console-api/openapi.yaml openapi/data-plane.yaml
openapi-lint:
	$(REDOCLY) lint --format=stylish --max-problems=100 --config redocly.yaml $(OPENAPI_DOCS)

# Every benchmark of every package, once each (a smoke run; for figures use
# the commands in docs/benchmarks.md, which set -benchtime and -count).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./...

# Every fuzz target of every package, FUZZTIME (30s) each.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz-all
