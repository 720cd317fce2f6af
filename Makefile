# The relay's build. `make run` and `make test` are the two commands a fresh
# machine needs; everything they use installs itself (Go modules, Debian's
# cross compiler and qemu-user, the Serverless Framework from npm).

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BUILD     := build
ARM64_CC  ?= aarch64-linux-gnu-gcc
# Amazon Linux 2023 (provided.al2023) has glibc 2.34: no symbol may need more.
MAX_GLIBC := 2.34
# AWS's Lambda Runtime Interface Emulator, a second Runtime API for the tests.
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
RIE         := $(CURDIR)/$(BUILD)/bin/aws-lambda-rie
# The real Apache Kafka broker's jars, from Maven Central (integration/apache/pom.xml).
KAFKA_LIBS  := $(CURDIR)/$(BUILD)/kafka/libs
# Every package but the real-cluster tests, which run on their own after them.
FAST_PKGS    = $(shell $(GO) list ./... | grep -v /integration/apache)
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all run test test-arm64 rie kafka-libs build build-amd64 build-arm64 package check-glibc toolchain bench pgo soak fuzz dashboard clean

all: build

## run: the whole pipeline on the local stack (SQS with a DLQ, the lambda binary, Kafka) and what became of every message; KAFKA=apache on a real 3-broker cluster
KAFKA ?= kfake
run: node_modules $(if $(filter apache,$(KAFKA)),kafka-libs)
	KAFKA=$(KAFKA) RELAY_KAFKA_LIBS=$(KAFKA_LIBS) $(GO) run ./cmd/relay-local

## test: every test, against real protocol peers on 127.0.0.1; packages the arm64 function first
test: toolchain node_modules package rie kafka-libs
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	RELAY_ARM64_BINARY=$(CURDIR)/$(BUILD)/arm64/bootstrap RELAY_RIE=$(RIE) $(GO) test -count=1 -timeout 9m $(FAST_PKGS)
	RELAY_KAFKA_LIBS=$(KAFKA_LIBS) $(GO) test -count=1 -timeout 8m ./integration/apache/
	$(MAKE) --no-print-directory test-arm64

## test-arm64: the event decoder's tests (and the mapping's) built for linux/arm64 and run under qemu-user, where its NEON assembly runs
ARM64_ENV := CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$(ARM64_CC)
test-arm64: toolchain
	$(ARM64_ENV) $(GO) vet ./relay/ ./relay/sqsevent/
	$(ARM64_ENV) $(GO) test -count=1 -timeout 5m -exec 'qemu-aarch64 -L /usr/aarch64-linux-gnu' ./relay/sqsevent/
	$(ARM64_ENV) $(GO) test -count=1 -timeout 5m -exec 'qemu-aarch64 -L /usr/aarch64-linux-gnu' \
	  -run '^(TestMap.*|FuzzMap|TestLargeFIFOEventPipelined)$$' ./relay/

## rie: AWS's Runtime Interface Emulator from the module proxy, for the tests
rie: $(RIE)
$(RIE):
	GOBIN=$(CURDIR)/$(BUILD)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## kafka-libs: the real Kafka broker's jars from Maven Central, for integration/apache (a second run reads ~/.m2 only)
kafka-libs: $(KAFKA_LIBS)/.fetched
$(KAFKA_LIBS)/.fetched: integration/apache/pom.xml
	mvn -q -B -o -f integration/apache/pom.xml package -Dlibs=$(KAFKA_LIBS) 2>/dev/null || \
	  mvn -q -B -f integration/apache/pom.xml package -Dlibs=$(KAFKA_LIBS)
	touch $@

## build: the function as `bootstrap` for linux/arm64 and linux/amd64, stripped, version-stamped
build: build-amd64 build-arm64

build-amd64:
	mkdir -p $(BUILD)/amd64
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BUILD)/amd64/bootstrap ./lambda

build-arm64: toolchain
	mkdir -p $(BUILD)/arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=$(ARM64_CC) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BUILD)/arm64/bootstrap ./lambda

## package: the arm64 bootstrap zipped for the Serverless Framework, after the glibc check
package: build-arm64 check-glibc
	rm -f $(BUILD)/relay.zip
	cd $(BUILD)/arm64 && python3 -m zipfile -c ../relay.zip bootstrap
	@echo "packaged $(BUILD)/relay.zip"

## check-glibc: fail if the arm64 binary needs a glibc symbol newer than $(MAX_GLIBC)
check-glibc:
	@need=$$(aarch64-linux-gnu-objdump -T $(BUILD)/arm64/bootstrap | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1); \
	 newest=$$(printf '%s\n%s\n' "$$need" "$(MAX_GLIBC)" | sort -V | tail -1); \
	 if [ "$$newest" != "$(MAX_GLIBC)" ]; then echo "bootstrap needs GLIBC_$$need, newer than Amazon Linux 2023's $(MAX_GLIBC)"; exit 1; fi; \
	 echo "glibc check: bootstrap needs at most GLIBC_$$need (limit $(MAX_GLIBC))"

## toolchain: Debian's arm64 cross compiler and qemu-user, if missing
toolchain:
	@command -v $(ARM64_CC) >/dev/null && command -v qemu-aarch64 >/dev/null || \
	 { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu qemu-user >/dev/null; }

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch node_modules

## soak: the fault cases 5 times each and 150 batches with random faults on kfake, then KAFKA_SOAK batches on the real cluster; prints the reliability tables
KAFKA_SOAK ?= 200
soak: kafka-libs
	RELAY_FAULT_RUNS=5 RELAY_SOAK=150 $(GO) test -count=1 -timeout 30m -run 'TestFaults|TestSoak' -v ./integration/ | grep -E '^\s+\||^(---|ok|FAIL)|seed|drawn'
	RELAY_KAFKA_LIBS=$(KAFKA_LIBS) RELAY_KAFKA_SOAK=$(KAFKA_SOAK) $(GO) test -count=1 -timeout 60m -run 'TestSoak' -v ./integration/apache/ | grep -E '\||^(---|ok|FAIL)|seed|drawn|batches,'


## dashboard: draw the CloudWatch dashboard serverless.yml defines (its layout and metrics) into docs/dashboard.png
dashboard: package node_modules
	rm -rf $(BUILD)/sls-test
	HOME=$(CURDIR)/$(BUILD) AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=not-a-real-secret SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off CI=true \
	  node_modules/.bin/serverless package --stage test --package $(BUILD)/sls-test
	$(GO) run ./cmd/dashboard -template $(BUILD)/sls-test/cloudformation-template-update-stack.json -o docs/dashboard.png

## fuzz: the event decoder, the envelope reader and the mapping under go test -fuzz, FUZZTIME each (default 60s)
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) ./relay/sqsevent/
	$(GO) test -run '^$$' -fuzz '^FuzzEnvelopeReader$$' -fuzztime $(FUZZTIME) ./relay/sqsevent/
	$(GO) test -run '^$$' -fuzz '^FuzzMap$$' -fuzztime $(FUZZTIME) ./relay/

## bench: relay vs raw librdkafka vs the naive pattern on the embedded broker, one run, ratios and chart; then on the real RF-3 cluster
bench: kafka-libs
	mkdir -p $(BUILD) docs
	$(GO) test -run '^$$' -bench . -skip 'RelayVsRaw|BinaryVsRaw' -benchmem -count 3 -timeout 10m ./relay/ ./relay/sqsevent/ ./integration/ > $(BUILD)/bench.txt || (cat $(BUILD)/bench.txt; exit 1)
	$(GO) test -run '^$$' -bench '^BenchmarkRelayVsRaw$$' -benchtime 40x -count 9 -timeout 5m ./integration/ >> $(BUILD)/bench.txt || (cat $(BUILD)/bench.txt; exit 1)
	$(GO) test -run '^$$' -bench '^BenchmarkBinaryVsRaw$$' -benchtime 20x -count 5 -timeout 5m ./integration/ >> $(BUILD)/bench.txt || (cat $(BUILD)/bench.txt; exit 1)
	$(GO) run ./cmd/benchtable -chart docs/throughput.png -cost-chart docs/cost.png < $(BUILD)/bench.txt
	@echo "the real RF-3 cluster (relay vs raw confluent-kafka-go alternated, and kafka-python send+flush per message):"
	@command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import kafka' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-kafka >/dev/null; }
	RELAY_KAFKA_LIBS=$(KAFKA_LIBS) $(GO) test -run '^$$' -bench '^BenchmarkRealCluster$$' -benchtime 8x -count 3 -timeout 15m ./integration/apache/ | grep -E '^Benchmark' | tee $(BUILD)/bench-real.txt
	RELAY_KAFKA_LIBS=$(KAFKA_LIBS) $(GO) test -run '^$$' -bench '^BenchmarkRealClusterSmall$$' -benchtime 300x -count 3 -timeout 15m ./integration/apache/ | grep -E '^Benchmark' | tee -a $(BUILD)/bench-real.txt

## pgo: refresh lambda/default.pgo, the CPU profile every build of the function is optimized with (go build's -pgo=auto), from the binary relaying 6 MB events
pgo:
	mkdir -p $(BUILD)
	RELAY_CPU_PROFILE=$(CURDIR)/$(BUILD)/cpu.pprof $(GO) test -run '^$$' -bench '^BenchmarkBinaryVsRaw$$' -benchtime 400x -timeout 10m ./integration/
	cp $(BUILD)/cpu.pprof lambda/default.pgo

clean:
	rm -rf $(BUILD) .serverless
