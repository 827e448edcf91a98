# hsmenv: the README's first two commands are `make demo` and `make test`.
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: demo test deps vet build bench fuzz interop-deps

build:
	$(GO) build -o bin/hsmenv ./cmd/hsmenv

# The main job: throw-away keys, a real file encrypted, inspected, decrypted.
demo:
	bash scripts/demo.sh

# The whole test suite, as CI runs it (scripts/deps.sh installs what it needs).
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

deps:
	bash scripts/deps.sh

bench:
	bash scripts/bench.sh

# Short fuzzing pass over every parser (FUZZTIME per target).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run XXX -fuzz FuzzParseHeader -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./envelope/
	$(GO) test -run XXX -fuzz FuzzDecrypt -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./envelope/
	$(GO) test -run XXX -fuzz FuzzRange -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./envelope/
