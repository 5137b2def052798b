# SPDX-License-Identifier: MIT
# p2pcdn — one non-recursive Makefile for the library, every daemon and the tests.
#
#   make                 release build into build/
#   make SANITIZE=1      ASan+UBSan build into build-asan/
#   make check           deps, sanitized build, unit + integration + fuzz smoke
#   make demo            deps, build, start a local stack (deploy/demo.sh)
#   make install         PREFIX=/usr/local DESTDIR=

VERSION   := 0.1.0
V         ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif
CC        ?= cc
PREFIX    ?= /usr/local
DESTDIR   ?=
PKGS      := libmicrohttpd libevent libevent_pthreads jansson hiredis libpq libmaxminddb libsodium inih

ifeq ($(SANITIZE),1)
B         ?= build-asan
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1 -g
else
B         ?= build
SANFLAGS  :=
OPT       := -O2 -g
endif

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
             -Wpointer-arith -Wcast-qual -Wundef -Wvla -Wimplicit-fallthrough -Werror
CPPFLAGS  += -Icommon -DP2PCDN_VERSION='"$(VERSION)"' -D_GNU_SOURCE
CFLAGS    := -std=gnu11 $(OPT) $(WARN) $(SANFLAGS) -pthread -MMD -MP \
             $(shell pkg-config --cflags $(PKGS)) $(EXTRA_CFLAGS)
LDFLAGS   += $(SANFLAGS) -pthread
LDLIBS    := $(shell pkg-config --libs $(PKGS)) -lm

# Every folder with a main.c is a daemon; the binary takes the folder's name.
DAEMONS   := $(patsubst %/main.c,%,$(wildcard */main.c))
BINS      := $(addprefix $(B)/bin/,$(DAEMONS))
# The reference peer and load generator (tests/peer/, docs/peer.md).
PEER_SRC  := $(wildcard tests/peer/*.c)
ifneq ($(PEER_SRC),)
BINS      += $(B)/bin/p2pcdn-peer
endif

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(patsubst %.c,$(B)/%.o,$(COMMON_SRC)) $(B)/gen/schema.o
SQL        := $(sort $(wildcard deploy/sql/*.sql))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))

FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_B    := build-fuzz
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(FUZZ_B)/%,$(FUZZ_SRC))

.PHONY: all deps check unit integration fuzz fuzz-smoke demo demo-stop install clean format format-check bench unit-bins
all: $(BINS)

deps:
	@deploy/install-deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# Migrations are compiled into every binary so `--migrate` needs no files.
$(B)/gen/schema.c: $(SQL) deploy/sql/embed.sh
	@mkdir -p $(dir $@)
	deploy/sql/embed.sh $(SQL) >$@

$(B)/gen/schema.o: $(B)/gen/schema.c
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(B)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@
	$(Q)ar rcs $@ $^

.SECONDARY:
.SECONDEXPANSION:
$(B)/bin/%: $$(addprefix $(B)/,$$(subst .c,.o,$$(wildcard $$*/*.c))) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The peer is a client, not a daemon, built beside them.
$(B)/bin/p2pcdn-peer: $(patsubst %.c,$(B)/%.o,$(PEER_SRC)) $(B)/libcommon.a
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests and fuzz targets of a daemon's logic link its objects but
# main.o: tests/unit/test_PFX_*.c and tests/fuzz/fuzz_PFX_*.c, with PFX the
# daemon's short name below.
define DAEMON_TESTS
$(1)_LIB_SRC := $$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c))
$(1)_LIB_OBJ := $$(patsubst %.c,$$(B)/%.o,$$($(1)_LIB_SRC))
$$(B)/tests/test_$(2)_%: $$(B)/tests/unit/test_$(2)_%.o $$($(1)_LIB_OBJ) $$(B)/libcommon.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS) -lcmocka
$$(FUZZ_B)/fuzz_$(2)_%: tests/fuzz/fuzz_$(2)_%.c $$(COMMON_SRC) $$($(1)_LIB_SRC) $$(FUZZ_B)/gen/schema.c $$(wildcard common/*.h $(1)/*.h)
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) -I$(1) -o $$@ $$< $$(COMMON_SRC) $$($(1)_LIB_SRC) $$(FUZZ_B)/gen/schema.c $$(LDLIBS)
endef
DAEMON_PREFIXES := route-server:route tracker:trk login-server:login relay-server:relay \
	index-server:index cache-server:cache

$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Fuzz targets: clang + libFuzzer, own build dir (objects never mix).
FUZZ_CC := clang -std=gnu11 -g -O1 $(CPPFLAGS) -fsanitize=fuzzer,address,undefined \
	$(shell pkg-config --cflags $(PKGS))
$(FUZZ_B)/gen/schema.c: $(SQL) deploy/sql/embed.sh
	@mkdir -p $(dir $@)
	deploy/sql/embed.sh $(SQL) >$@
$(FUZZ_B)/%: tests/fuzz/%.c $(COMMON_SRC) $(FUZZ_B)/gen/schema.c $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -o $@ $< $(COMMON_SRC) $(FUZZ_B)/gen/schema.c $(LDLIBS)

$(foreach d,$(DAEMON_PREFIXES),$(eval $(call DAEMON_TESTS,$(word 1,$(subst :, ,$(d))),$(word 2,$(subst :, ,$(d))))))

fuzz: $(FUZZ_BINS)

check:
	@deploy/install-deps.sh
	$(MAKE) format-check
	$(MAKE) CC=clang B=build-clang all
	$(MAKE) SANITIZE=1 all unit-bins
	$(MAKE) fuzz
	tests/run-all.sh build-asan $(FUZZ_B)

unit-bins: $(UNIT_BINS)

demo:
	@deploy/install-deps.sh --demo
	$(MAKE) all
	deploy/demo.sh run

demo-stop:
	deploy/demo.sh stop

# make bench-route, bench-tracker, bench-login, ...: tests/bench/NAME_bench.sh
# (docs of each daemon: Benchmark). `make bench` runs the route-server's.
bench: bench-route

bench-%: all
	tests/bench/$*_bench.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/p2pcdn/sql \
		$(DESTDIR)$(PREFIX)/share/p2pcdn/examples $(DESTDIR)$(PREFIX)/share/doc/p2pcdn \
		$(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(SQL) $(DESTDIR)$(PREFIX)/share/p2pcdn/sql/
	install -m 0644 deploy/examples/* $(DESTDIR)$(PREFIX)/share/p2pcdn/examples/
	install -m 0644 docs/*.md $(DESTDIR)$(PREFIX)/share/doc/p2pcdn/
	for u in deploy/systemd/*.service; do \
		sed 's|@PREFIX@|$(PREFIX)|g' $$u >$(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u) || exit 1; \
	done

FMT_SRC = $(sort $(wildcard common/*.[ch] */*.c */*.h tests/unit/*.[ch] tests/fuzz/*.c tests/peer/*.[ch] tests/bench/*.c))
format:
	clang-format -i $(FMT_SRC)
format-check:
	@clang-format --dry-run --Werror $(FMT_SRC) && echo "format-check: $(words $(FMT_SRC)) files clean"

clean:
	rm -rf build build-asan build-clang build-fuzz

-include $(shell find $(B) $(FUZZ_B) -name '*.d' 2>/dev/null)
