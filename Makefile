# fraudstream — make run starts everything, make test tests it.

GO          ?= go
BIN         := bin/fraudstream
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages whose tests start servers or brokers get more time on 2 cores.
TEST_FLAGS  ?= -count=1 -timeout 15m

.PHONY: run build test lint clean verify-eos images e2e bench

## run: build and start the whole pipeline in one process (broker, Redis, SQLite, services, traffic)
run: build
	./$(BIN) dev

## build: the static fraudstream binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/fraudstream

## test: unit and in-process integration tests (needs redis-server and PostgreSQL's initdb on PATH; CI=true makes their absence a failure)
test:
	$(GO) test $(TEST_FLAGS) ./...

## images: the fraudstream image FROM scratch, and Redis/PostgreSQL images built locally when they cannot be pulled
images:
	bash deployments/images/build.sh

## e2e: the real binaries in containers (testcontainers-go, build tag e2e; its own module in e2e/, so Docker's client stays out of the product's dependencies); needs a Docker engine
e2e: images
	cd e2e && TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 \
		$(GO) test -tags e2e -count=1 -timeout 30m -v ./...

## lint: imports only point down the layers, go.mod and e2e/go.mod tidy, go vet and staticcheck, including the e2e module (build tag e2e)
lint:
	$(GO) run ./tools/layercheck
	$(GO) mod tidy -diff
	cd e2e && $(GO) mod tidy -diff
	$(GO) vet ./...
	cd e2e && $(GO) vet -tags e2e ./...
	$(STATICCHECK) ./...
	cd e2e && $(STATICCHECK) -tags e2e ./...

## clean: remove the binary and the dev data in .data/
clean:
	rm -rf bin .data

## verify-eos: exactly-once proof at scale: 200k transactions, two scorer processes SIGKILLed 12 times, output byte-identical to a crash-free run
verify-eos:
	$(GO) test -count=1 -timeout 30m -run '^TestVerifyEOS$$' -v ./tools/eosverify -args -eos.records=200000 -eos.kills=12 -eos.feed=90s

## bench: Go micro-benchmarks (raw output in out/bench/micro.txt, for benchstat) and the system benchmark against the real binaries; writes docs/BENCHMARKS.md. About 20 minutes; BENCH_SOAK=1m shortens the 10-minute soak (other BENCH_* settings: tools/benchreport/system_test.go)
bench: build
	$(GO) test -tags benchsystem -count=1 -timeout 120m -run '^TestBenchmarkReport$$' -v ./tools/benchreport/ -args -bench.root=$(CURDIR)
