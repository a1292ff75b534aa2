# tlsbridge: `make run` runs the proxy on ./config.toml, `make test` runs
# every test (Go unit and integration tests with -race, then the real-client
# examples in examples/).
GO       ?= go
# What "tlsbridge version" prints, from git. DATE honours SOURCE_DATE_EPOCH
# (reproducible builds). LDFLAGS is the one place they go into a binary:
# every target that builds one (build, install, deb, dist) uses it.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
BIN      := bin/tlsbridge
# The build with the legacy TLS engine (OpenSSL through cgo, Debian's
# libssl3; internal/openssl): SSLv2-format hellos, session-ID resumption,
# OpenSSL's RSA. Dynamically linked; the default build stays static.
BIN_OPENSSL := bin/tlsbridge-openssl

.PHONY: all build build-openssl run test unit examples fuzz bench vet fmt clean install uninstall deb dist

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tlsbridge

build-openssl:
	CGO_ENABLED=1 $(GO) build -tags openssl -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_OPENSSL) ./cmd/tlsbridge

run: build
	./$(BIN) run -config config.toml

test: vet unit fuzz build build-openssl examples

# Release targets. vet also vets and builds every one with CGO_ENABLED=0,
# so code that compiles on one OS only (a Linux-only truststore symbol, a
# syscall) cannot land: platform code goes in _<goos>.go files (issue 18).
TARGETS ?= linux/amd64 linux/arm64 windows/amd64 darwin/amd64 darwin/arm64
vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	CGO_ENABLED=1 $(GO) vet -tags openssl ./...
	@set -e; for t in $(TARGETS); do echo "vet and build $$t"; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) vet ./...; \
		GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./...; \
	done

unit:
	$(GO) test -race -shuffle=on -count=2 -timeout 15m ./...
	# The same with the legacy engine built in: bump's tests then run the
	# TLS 1.0/1.1 apps through OpenSSL, plus the engine's own tests.
	CGO_ENABLED=1 $(GO) test -tags openssl -race -shuffle=on -count=1 -timeout 15m ./internal/openssl ./bump ./cmd/...
	# The auth flood's latency bounds, which -race makes meaningless: a
	# timing test on a shared 2-core machine gets a second try; a real
	# regression (a 1.5 s p50 before the limit) fails both.
	$(GO) test -run '^TestAuthFloodKeepsLegitimateFast$$' -count=1 ./bump || \
		$(GO) test -run '^TestAuthFloodKeepsLegitimateFast$$' -count=1 ./bump

# Each fuzz target runs briefly; a crash it finds becomes a seed in testdata/.
# A count, not a duration: a duration -fuzztime can fail with a spurious
# "context deadline exceeded" on go1.26 (golang/go#75804, fixed in go1.27).
FUZZTIME ?= 20000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzNormalize$$' -fuzztime $(FUZZTIME) ./internal/hostname
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzMatch$$' -fuzztime $(FUZZTIME) ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzPeekClientHello$$' -fuzztime $(FUZZTIME) ./bump
	$(GO) test -run '^$$' -fuzz '^FuzzSplitTarget$$' -fuzztime $(FUZZTIME) ./bump
	$(GO) test -run '^$$' -fuzz '^FuzzSSLv2Detector$$' -fuzztime $(FUZZTIME) ./bump
	$(GO) test -run '^$$' -fuzz '^FuzzReadSSLv2Hello$$' -fuzztime $(FUZZTIME) ./bump
	$(GO) test -run '^$$' -fuzz '^FuzzReadRequest$$' -fuzztime $(FUZZTIME) ./internal/http1
	$(GO) test -run '^$$' -fuzz '^FuzzReadResponse$$' -fuzztime $(FUZZTIME) ./internal/http1
	$(GO) test -run '^$$' -fuzz '^FuzzCopyChunked$$' -fuzztime $(FUZZTIME) ./internal/http1

examples: build build-openssl
	bash examples/run.sh

# make install PREFIX=/usr/local (the default): binary, systemd unit,
# sysusers.d entry, /etc/tlsbridge/config.toml unless present; DESTDIR
# stages for packagers. Paths and details: packaging/install.sh.
PREFIX ?= /usr/local
INSTALL_ENV = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' $(foreach v,BINDIR SYSCONFDIR UNITDIR SYSUSERSDIR DOCDIR,$(if $($(v)),$(v)='$($(v))'))
install: build
	$(INSTALL_ENV) sh packaging/install.sh install $(BIN)
uninstall:
	$(INSTALL_ENV) sh packaging/install.sh uninstall

# make deb: $(DEB_DIR)/tlsbridge_<version>-1_<arch>.deb with nfpm, pinned in
# packaging/go.mod (fetched from the Go module proxy on first use; no other
# network), with both builds: /usr/bin/tlsbridge and the legacy engine's
# /usr/lib/tlsbridge/tlsbridge-openssl (gcc and libssl-dev to build).
# Debian versions must start with a digit: v1.2.3-4-gabc becomes
# 1.2.3+git4.gabc, an untagged abc1234 0.0.0~git<commit date>.abc1234.
DEB_VERSION ?= $(shell v='$(VERSION)'; case $$v in (v[0-9]*) echo "$$v" | sed -E 's/^v//; s/-([0-9]+)-g/+git\1./; s/-dirty$$/+dirty/';; (*) echo "0.0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$$v" | sed 's/-dirty$$/+dirty/';; esac)
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_DIR     ?= bin
deb: build build-openssl
	cd packaging && DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' $(GO) tool nfpm package --config nfpm.yaml --packager deb --target '$(abspath $(DEB_DIR))/'

# make dist: $(DIST_DIR)/tlsbridge_<version>_<os>_<arch>.tar.gz (.zip for
# Windows) for each of TARGETS, with README, LICENSE, config.toml and docs,
# and SHA256SUMS; each binary prints its version, commit and date
# (LDFLAGS). Check with: cd dist && sha256sum -c SHA256SUMS.
DIST_DIR ?= dist
dist:
	VERSION='$(VERSION)' LDFLAGS='$(LDFLAGS)' GO='$(GO)' DIST_DIR='$(DIST_DIR)' bash packaging/dist.sh $(TARGETS)

# Micro-benchmarks (bounded: BENCHTIME x BENCHCOUNT x -cpu 1,2; compare runs
# with benchstat bench.txt), then the load tool against bin/tlsbridge and an
# nginx origin on loopback (examples/bench-vs-squid/bench.sh without squid;
# run that script alone for the squid comparison). About 2 minutes.
BENCHTIME  ?= 200ms
BENCHCOUNT ?= 3
bench: build
	bash -o pipefail -c "$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -cpu 1,2 -timeout 5m ./... | tee bench.txt"
	bash examples/bench-vs-squid/bench.sh --tlsbridge-only

clean:
	rm -rf bin bench.txt dist
