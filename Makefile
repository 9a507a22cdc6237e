# mailseal: `make run` starts a demo gateway, `make test` runs every test.
BUILD      ?= build
ASAN_BUILD ?= build-asan
PYTHON     ?= /usr/bin/python3
MESON_OPTS ?=

.PHONY: all build deps test-deps run test unit integration browser asan fuzz \
	format format-check docs docs-check bench clean

all: build

deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The demo: a generated configuration under ./var, SMTP on 127.0.0.1:2525.
run: deps build
	@scripts/demo-config var
	$(BUILD)/src/daemon/mailseald -f -c $(CURDIR)/var/mailseal.conf

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@out=$$(git ls-files '*.c' '*.h' | xargs clang-format --dry-run 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | head -40; \
	echo "clang-format: run 'make format'"; exit 1; fi

docs: build
	$(BUILD)/src/ctl/mailsealctl config doc > docs/configuration.md
	$(BUILD)/src/ctl/mailsealctl property doc > docs/properties.md

docs-check: build
	@$(BUILD)/src/ctl/mailsealctl config doc | diff -u docs/configuration.md - \
	|| { echo "docs/configuration.md is stale: run 'make docs'"; exit 1; }
	@$(BUILD)/src/ctl/mailsealctl property doc | diff -u docs/properties.md - \
	|| { echo "docs/properties.md is stale: run 'make docs'"; exit 1; }

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	MAILSEAL_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest -q -x tests/integration

# The admin console in Debian's chromium (playwright-core); screenshots go
# to tests/artifacts/browser/.
browser: build
	cd tests/browser && MAILSEAL_BUILD=$(CURDIR)/$(BUILD) \
		node --test --test-concurrency=1

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debug $(MESON_OPTS)

# The same tests once more under AddressSanitizer and UBSan.
asan: $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --suite unit --print-errorlogs
	MAILSEAL_BUILD=$(CURDIR)/$(ASAN_BUILD) MAILSEAL_SANITIZED=1 \
		$(PYTHON) -m pytest -q -x tests/integration

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 10

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug

# Every parser of outside input, fuzzed briefly over its corpus.
fuzz: $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	scripts/run-fuzzers $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: test-deps format-check build docs-check unit integration browser asan fuzz
	@echo "make test: all tests passed"

bench: test-deps build
	@if [ -x bench/run ]; then bench/run; else \
	echo "bench: not yet written (see the benchmark issue)"; exit 1; fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
