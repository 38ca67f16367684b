# Common loops. `make run` starts the embedded mode; `make test` is what CI runs.
GO ?= go
TEST_TIMEOUT ?= 20m

.PHONY: run test lint bench fuzz minipulsar build

run:
	$(GO) run ./cmd/pulsar-sidecar

minipulsar:
	$(GO) run ./cmd/minipulsar

build:
	$(GO) build ./...

# The second line runs the fault tests that kill brokers under load without
# -race (files tagged !race): pulsar-client-go v0.19 races on its own
# reconnect paths, which the race detector would report.
test:
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./app/ ./durable/

lint:
	gofmt -l $$(git ls-files '*.go')
	$(GO) vet ./...
	golangci-lint run ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./minipulsar/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeFrame -fuzztime 60s ./minipulsar/
