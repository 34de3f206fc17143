# pgwarden - a plain, strict build. `make` gives ./pgwarden.
#   make            build ./pgwarden (objects in build/)
#   make test       install what is missing, build, run unit and integration tests
#   make run        install what is missing, build, start a demo PostgreSQL + pgwarden
#   make asan       build ./pgwarden-asan with AddressSanitizer + UBSan
#   make integration-asan   the integration suite against ./pgwarden-asan (CI runs it)
#   make fuzz       build and briefly run the libFuzzer targets (clang)
#   make check-layers   no #include reaches up the layer stack (also run by test and format-check)
#   make unit       unit tests only;  make integration  pytest only
#   make bench      pgbench direct vs PgBouncer vs pgwarden

CC ?= cc
BUILD ?= build
BIN ?= pgwarden
SANITIZER ?=
PY ?= /usr/bin/python3

PKGS := libevent_core libevent_openssl libevent_extra libevent_pthreads openssl libpq libpcre2-8 inih
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
VERSION := 0.1.0
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -DPGWARDEN_VERSION=\"$(VERSION)\" $(WARN) $(CFLAGS) -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -lpg_query -lpthread -lm

ifneq ($(SANITIZER),)
ALL_CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZER)
endif

# Each module lists its own sources (explicit lists, no wildcards).
include conf/core/module.mk
include proxy/module.mk
include proxy/cli/module.mk
include protocol/module.mk
include conf/module.mk
include policy/module.mk
include audit/module.mk

LIB_SRCS := $(CORE_SRCS) $(PROXY_SRCS) $(CLI_SRCS) $(PROTOCOL_SRCS) $(CONF_SRCS) $(POLICY_SRCS) $(AUDIT_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/proxy/main.o
LIB_A := $(BUILD)/libpgwarden.a

UNIT_TESTS := $(CORE_TESTS) $(PROTOCOL_TESTS) $(CONF_TESTS) $(POLICY_TESTS) $(AUDIT_TESTS) $(PROXY_TESTS)
UNIT_BINS := $(UNIT_TESTS:%.c=$(BUILD)/%)

.PHONY: all clean test unit integration integration-asan run asan fuzz bench deps format format-check check-layers relay-bench-bin

all: $(BIN)

$(BIN): $(MAIN_OBJ) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LDLIBS) -lcmocka

deps:
	@bash deploy/install-deps.sh

unit: $(UNIT_BINS) $(BIN)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(BIN)
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

# A short fuzz smoke run keeps the libFuzzer targets building and clean; `make fuzz` runs longer.
test: deps
	@bash tests/check_layers.sh
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@FUZZ_SECONDS=5 bash tests/fuzz/run.sh
	@$(MAKE) --no-print-directory integration

run: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/demo/run.sh

asan:
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=pgwarden-asan SANITIZER=address,undefined CFLAGS="-O1 -g"

# The same suite against the sanitizer build: a sanitizer report in pgwarden's stderr fails the test.
integration-asan: asan
	PGWARDEN_BIN=$(CURDIR)/pgwarden-asan LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		$(PY) -m pytest -q -p no:cacheprovider tests/integration

fuzz:
	@bash tests/fuzz/run.sh

# The relay-only variant (no classification) exists only to measure the policy engine's cost.
relay-bench-bin:
	@$(MAKE) --no-print-directory BUILD=build-relay BIN=pgwarden-relay CFLAGS="-O2 -g -DPGW_RELAY_ONLY"

bench: deps
	@$(MAKE) --no-print-directory all relay-bench-bin
	@bash bench/run.sh

format:
	clang-format -i $(LIB_SRCS) proxy/main.c $(wildcard */*.h */*/*.h)

format-check: check-layers
	clang-format --dry-run -Werror $(LIB_SRCS) proxy/main.c $(wildcard */*.h */*/*.h)

# The includes form a strict stack (core <- conf <- protocol <- policy <- audit <- proxy): FILE:LINE per breach.
check-layers:
	@bash tests/check_layers.sh

clean:
	rm -rf build build-asan build-fuzz build-relay $(BIN) pgwarden-asan pgwarden-relay

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
