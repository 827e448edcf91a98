# hsmenv: the README's first two commands are `make demo` and `make test`.
GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: demo test deps lint vet build bench fuzz interop-deps man

# The commit is stamped with -X: the go command does not stamp builds from
# git worktrees or with GOFLAGS=-buildvcs=false.
COMMIT := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)
build:
	$(GO) build -ldflags "-X main.commit=$(COMMIT)" -o bin/hsmenv ./cmd/hsmenv
	$(GO) build -o bin/age-plugin-hsmenv ./cmd/age-plugin-hsmenv

# The main job: throw-away keys, a real file encrypted, inspected, decrypted.
demo:
	bash scripts/demo.sh

# The whole test suite, as CI runs it (scripts/deps.sh installs what it needs).
# interop/goesdk, interop/sops and interop/kubernetes are modules of their
# own (the official Go ESDK and the AWS SDK it pulls in, sops, the
# apiserver's KMS v2 transformer stay out of the main module): vetted and
# tested after it. Its
# vet builds with -race, so the test reuses its build (measured cold: 2.5 min less).
test: deps lint
	$(GO) test -race -count=1 ./...
	cd interop/goesdk && $(GO) vet -race ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -race -count=1 ./...
	cd interop/sops && $(GO) vet -race ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -race -count=1 ./...
	cd interop/kubernetes && $(GO) vet -race ./... && $(GO) run $(STATICCHECK) ./... && $(GO) test -race -count=1 ./...

# gofmt, go vet and staticcheck (a pinned version, from the module proxy).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

deps:
	bash scripts/deps.sh

# A man page for every hsmenv command and for age-plugin-hsmenv, generated
# from their help into ./man (view with man -l man/hsmenv-encrypt.1, or add
# ./man to MANPATH). The generators are tests: the binaries do not link them.
man:
	HSMENV_MAN_DIR=$(CURDIR)/man $(GO) test ./cmd/hsmenv ./cmd/age-plugin-hsmenv -run '^TestManPages$$' -count=1

bench:
	bash scripts/bench.sh

# Fuzzing pass over every fuzz target of the module (scripts/fuzz.sh finds
# them), FUZZTIME per target, e.g. `make fuzz FUZZTIME=10m FUZZ_JOBS=2`.
# FUZZ_JOBS targets run at once; FUZZ_PARALLEL (workers per target),
# FUZZ_MINIMIZE and FUZZ_FILTER (regexp on "pkg FuzzXxx") are passed through.
FUZZTIME ?= 30s
FUZZ_JOBS ?= 1
fuzz:
	FUZZTIME='$(FUZZTIME)' FUZZ_JOBS='$(FUZZ_JOBS)' FUZZ_PARALLEL='$(FUZZ_PARALLEL)' \
	FUZZ_MINIMIZE='$(FUZZ_MINIMIZE)' FUZZ_FILTER='$(FUZZ_FILTER)' GO='$(GO)' bash scripts/fuzz.sh
