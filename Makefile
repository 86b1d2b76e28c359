# roomcast build.
#
#   make            release build: build/roomcast
#   make run        install what is missing, build, start a node (embedded backplane without Redis)
#   make test       install what is missing, then: the layer check (test/check-layers.sh), gcc and
#                   clang builds, unit tests (cmocka), a short fuzz pass, the BullMQ tests, the
#                   Socket.IO protocol suite (test/protocol), the deploy checks and the end-to-end
#                   tests (node --test), all against the ASan+UBSan build
#   make bench      load generator scenarios (test/bench/)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each
#   make clean
#
# Every object of src/ except main.c goes into build/<flavour>/libroomcast.a, which the binary,
# the unit tests, the fuzz targets and the benchmark tools link against.

CC        ?= gcc
CLANG     ?= clang
O         ?= build
LIBS      := -levent_openssl -levent -lcjson -ljwt -lhiredis -lwslay -lhttp_parser -lmsgpackc -luring -lssl -lcrypto -lcrypt -lm
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -MMD -MP $(WARN)
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
BASEFLAGS += -DRC_VERSION=\"$(VERSION)\"

RELEASE_CFLAGS := $(BASEFLAGS) -O2 -g
SAN_CFLAGS     := $(BASEFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_LDFLAGS    := -fsanitize=address,undefined

SRCS      := $(sort $(wildcard src/*.c))
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))

REL_OBJS  := $(LIB_SRCS:src/%.c=$(O)/rel/%.o)
SAN_OBJS  := $(LIB_SRCS:src/%.c=$(O)/san/%.o)
CLANG_OBJS:= $(SRCS:src/%.c=$(O)/clang/%.o)
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(O)/san/unit/%)

.PHONY: all run test bench fuzz fuzz-short jobs clean deps deps-runtime check-clang unit e2e san layers
all: $(O)/roomcast

# ---- release -------------------------------------------------------------------------------
$(O)/rel/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(RELEASE_CFLAGS) -c $< -o $@
$(O)/rel/libroomcast.a: $(REL_OBJS)
	@rm -f $@; ar rcs $@ $^
$(O)/roomcast: $(O)/rel/main.o $(O)/rel/libroomcast.a
	$(CC) -o $@ $^ $(LIBS)

# ---- sanitizers (unit tests and end-to-end tests run this build) ---------------------------
$(O)/san/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -c $< -o $@
$(O)/san/libroomcast.a: $(SAN_OBJS)
	@rm -f $@; ar rcs $@ $^
$(O)/san/roomcast: $(O)/san/main.o $(O)/san/libroomcast.a
	$(CC) $(SAN_LDFLAGS) -o $@ $^ $(LIBS)
$(O)/san/unit/%: test/unit/%.c $(O)/san/libroomcast.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Itest/unit -o $@ $< $(O)/san/libroomcast.a $(SAN_LDFLAGS) -lcmocka $(LIBS)
san: $(O)/san/roomcast $(UNIT_BINS)

# ---- clang: the same sources must build warning-free with the second compiler ---------------
$(O)/clang/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CLANG) $(RELEASE_CFLAGS) -c $< -o $@
check-clang: $(CLANG_OBJS)

# ---- dependencies ----------------------------------------------------------------------------
deps:
	@deploy/install-deps.sh test
deps-runtime:
	@deploy/install-deps.sh runtime

# ---- entry points ----------------------------------------------------------------------------
run: deps-runtime
	@$(MAKE) --no-print-directory $(O)/roomcast
	@deploy/dev-run.sh $(O)/roomcast $(ARGS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: $(O)/san/roomcast
	cd test/e2e && ROOMCAST_BIN=$(CURDIR)/$(O)/san/roomcast node --test --test-concurrency=1 $(E2E)

# A short fuzz pass on every parser of outside input, so CI catches regressions; `make fuzz`
# runs them as long as asked.
FUZZ_SHORT ?= 5
fuzz-short:
	@test/fuzz/run.sh $(FUZZ_SHORT)

# The BullMQ job layout against real Workers of both supported majors (test/jobs/).
jobs:
	cd test/jobs && node --test --test-concurrency=1

# The official Socket.IO protocol test suite (test/protocol/, vendored from
# socketio/socket.io-protocol) against the sanitizer build configured as its reference server.
.PHONY: protocol
protocol: $(O)/san/roomcast
	cd test/protocol && ROOMCAST_BIN=$(CURDIR)/$(O)/san/roomcast node run.js

# The dependency picture: no include up the layers, no circle (test/check-layers.sh).
layers:
	@test/check-layers.sh

test: deps
	@$(MAKE) --no-print-directory layers
	@$(MAKE) --no-print-directory all check-clang
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-short
	@$(MAKE) --no-print-directory jobs
	@$(MAKE) --no-print-directory protocol
	@test/deploy/check.sh
	@$(MAKE) --no-print-directory e2e

bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C test/bench O=$(CURDIR)/$(O)/bench ROOT=$(CURDIR)
	test/bench/run.sh $(CURDIR)/$(O)

FUZZ_SECONDS ?= 60
fuzz: deps
	@test/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(O)

-include $(wildcard $(O)/*/*.d $(O)/san/unit/*.d)
