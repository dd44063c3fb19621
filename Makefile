# lunorad: the two commands a newcomer needs are `make up` and `make test`.
# Both bring up a Docker Engine first through scripts/ensure-docker.sh.

GO        ?= go
BIN       := bin/lunorad
CONFIG    ?= configs/example/lunorad.yaml
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# Integration tests share the engine; two packages at a time keeps a 2-core machine responsive.
TEST_P    ?= 2
TESTFLAGS ?=

.PHONY: up test build example docker vet bench bench-smoke clean

## up: build the example image's binary and the daemon, then serve configs/example on 127.0.0.1:8790
up: docker example build
	./$(BIN) up -c $(CONFIG)

# Race builds read and write sockets through net.Conn (see internal/rawio), so the data path's
# raw system calls are tested again without the race detector.
RAW_PKGS  := ./internal/rawio ./internal/router ./internal/httpfront ./e2e/routing

## test: vet and run every test (unit and integration, on the real engine) with the race detector,
## then the data-path packages again as they run in the daemon (raw socket I/O, no race detector)
test: docker vet
	CI=$${CI:-true} $(GO) test -race -p $(TEST_P) -count=1 $(TESTFLAGS) ./...
	CI=$${CI:-true} $(GO) test -p $(TEST_P) -count=1 $(TESTFLAGS) $(RAW_PKGS)

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lunorad

# The example container is FROM scratch: its static binary is built here, so no registry is needed.
example:
	CGO_ENABLED=0 $(GO) build -trimpath -o configs/example/hello/hello ./configs/example/hello

docker:
	@bash scripts/ensure-docker.sh

vet:
	$(GO) vet ./...

## bench: run the benchmark suite and rewrite BENCHMARKS.md (never part of `make test`; a few minutes)
bench: docker
	$(GO) run ./bench -out BENCHMARKS.md

## bench-smoke: every benchmark row for a moment, as a test (proves the harness; measures nothing)
bench-smoke: docker
	LUNORAD_BENCH_SMOKE=1 $(GO) test -count=1 -run TestSmoke -v ./bench

clean:
	rm -rf bin configs/example/hello/hello testdata/testserver/testserver

## build-static: a static binary for the Dockerfile / docker-compose.yml
build-static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/lunorad-static ./cmd/lunorad
