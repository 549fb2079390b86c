# rtspmesh — the front door. `make run` shows the mesh, `make test` proves it.
GO        ?= go
BIN       ?= bin/rtspmesh
PKGS      ?= ./...
STATICCHECK_VERSION ?= v0.8.2
BENCHTIME ?= 1x
FUZZTIME  ?= 10s

.PHONY: all build run test test-deps bench lint fuzz clean screenshot interop

all: build

build:
	$(GO) build -o $(BIN) ./cmd/rtspmesh

run: build
	./$(BIN) demo

# test-deps installs what the tests need when it is missing: ffmpeg, chromium,
# GStreamer and gst-rtsp-server with its Python bindings (interop tests). On
# Debian it uses apt-get; elsewhere it says what to install.
test-deps:
	@./.ci/install-test-deps

# test runs the suite, with the 5-minute live soak (SOAK) in a second
# go test beside the rest so that it does not hold one of the node package's
# parallel slots for its whole run; its output follows the rest's. Both must
# pass. PARALLEL tests of a package run at once: the node package's tests
# mostly wait on real-time plays (a third of a core each), so 4 at once
# keep 2 cores busy without starving the timing-sensitive ones.
# The third-party interop matrix (INTEROP: gst-rtsp-server, ffmpeg and
# GStreamer players; README, Testing) runs after the rest, on its own (about
# 1 m 50 s): its players decode in real time, and a dozen tests beside them
# starve GStreamer, which then loses a play's last frames now and then.
# -v puts its figures in the log: one line per cell (frames, pacing, end lag).
SOAK      ?= ^TestLiveMemoryFlat5Min$$
INTEROP   ?= ^TestInterop
PARALLEL  ?= 4
INTEROP_TEST = $(GO) test -race -count=1 -timeout 20m -v -run '$(INTEROP)' ./node/
test: test-deps
	$(GO) test -race -count=1 -run '^$$' $(PKGS) >/dev/null
	@soaklog=$$(mktemp); \
	$(GO) test -race -count=1 -timeout 20m -run '$(SOAK)' ./node/ >$$soaklog 2>&1 & soak=$$!; \
	$(GO) test -race -shuffle=on -parallel $(PARALLEL) -timeout 20m -skip '$(SOAK)|$(INTEROP)' $(PKGS); rest=$$?; \
	echo "== the third-party interop matrix ($(INTEROP)), after the rest:"; \
	$(INTEROP_TEST); interop=$$?; \
	wait $$soak; soakrc=$$?; \
	echo "== the live soak ($(SOAK)), run beside the rest:"; cat $$soaklog; rm -f $$soaklog; \
	test $$rest -eq 0 && test $$interop -eq 0 && test $$soakrc -eq 0

# interop runs only the third-party interop matrix (gst-rtsp-server and the
# built-in origin x ffmpeg and GStreamer x TCP and UDP x miss, hit, seek,
# mesh; live joins; codecs), which `make test` runs too: README, Testing.
interop: test-deps
	$(INTEROP_TEST)

# bench runs every benchmark, printing each as it ends, then the whole run
# as one table (internal/benchtable): every figure, its target and whether
# this run met it. BENCHOUT keeps the raw output (compare runs with
# benchstat); BENCH narrows the run to a -bench pattern. It fails when a
# benchmark failed, not when a target was missed (the table says so).
# Packages run one at a time (-p 1): go test runs as many at once as there
# are cores, and a CPU figure measured beside another package's benchmark
# is the two together.
BENCH     ?= .
BENCHOUT  ?= bench.out
bench: test-deps
	@{ $(GO) test -p 1 -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -timeout 30m $(PKGS) 2>&1; \
	  echo "go test exit $$?"; } | tee $(BENCHOUT)
	@echo; $(GO) run ./internal/benchtable < $(BENCHOUT)
	@grep -q '^go test exit 0$$' $(BENCHOUT)

lint:
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

# fuzz runs every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# screenshot writes docs/dashboard.png: the mesh dashboard test (two nodes,
# players, headless Chromium) saves what node B's page shows. Needs chromium
# (test-deps).
screenshot: test-deps
	$(GO) test -count=1 -run '^TestDashboardShowsMesh$$' ./node -dashboard.screenshot=$(CURDIR)/docs/dashboard.png

clean:
	rm -rf bin
