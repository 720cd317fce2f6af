# The relay's build. `make run` and `make test` are the two commands a fresh
# machine needs; everything they use installs itself.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BUILD    := build

.PHONY: all run test build bench clean

all: build

## run: relay a generated SQS batch (with a few bad records) into an embedded broker and print the outcome
run:
	$(GO) run ./cmd/relay-local

## test: every test, against real protocol peers on 127.0.0.1
test:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 9m ./...

## build: the function binary for this machine's linux, stripped and version-stamped
build:
	mkdir -p $(BUILD)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BUILD)/bootstrap ./lambda

## bench: relay vs raw librdkafka on the embedded broker, one run, with ratios
bench:
	mkdir -p $(BUILD)
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 10m ./relay/ ./integration/ > $(BUILD)/bench.txt || (cat $(BUILD)/bench.txt; exit 1)
	$(GO) run ./cmd/benchtable < $(BUILD)/bench.txt

clean:
	rm -rf $(BUILD)
