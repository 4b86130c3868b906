# imagehealth build.  `make` builds the C core, the Lua module and the tools
# into build/; `make test` runs every suite, plain and under ASan+UBSan.
CC      ?= cc
LUA     ?= lua5.4
PKGS    := lua5.4 libcrypto libcurl
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude -Isrc/core \
               $(shell pkg-config --cflags $(PKGS))
LIBS    := -lwim $(shell pkg-config --libs libcrypto libcurl) -lhivex -lpthread -lm
OPT     ?= -O2 -g

CORE_SRC := $(wildcard src/core/*.c src/core/*/*.c)
LUA_SRC  := $(wildcard src/lua/*.c)
CTEST_SRC := $(wildcard tests/*.c)

# One build directory per flavour.
B    := build
BA   := build-asan
SAN  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

all: $(B)/libimagehealth.a $(B)/libimagehealth.so $(B)/lua/imagehealth/core.so $(B)/ctest $(B)/mkhive \
     $(B)/ih-host $(B)/faultsrv

# examples/host.c: a C program embedding Lua 5.4 with the module linked in.
$(B)/ih-host: examples/host.c $(LUA_SRC:src/%.c=$(B)/obj/%.o) $(B)/libimagehealth.a
	$(CC) $(CFLAGS_BASE) $(OPT) -o $@ $^ $(shell pkg-config --libs lua5.4) $(LIBS)

# Test support: writes a registry hive holding a servicing policy.
$(B)/mkhive: tests/tools/mkhive.c | $(B)/obj/tests
	$(CC) $(CFLAGS_BASE) $(OPT) -o $@ $< -lhivex

# Test support: a misbehaving HTTP server on loopback (remote sources).
$(B)/faultsrv: tests/tools/faultsrv.c | $(B)/obj/tests
	$(CC) $(CFLAGS_BASE) $(OPT) -o $@ $< -lpthread

define flavour
$(1)/obj/%.o: src/%.c $$(wildcard include/*.h src/core/*.h src/core/*/*.h src/lua/*.h) | $(1)/obj/core $(1)/obj/core/source $(1)/obj/core/tree $(1)/obj/lua
	$$(CC) $$(CFLAGS_BASE) $(2) -fPIC -fvisibility=hidden -DIH_BUILDING -c $$< -o $$@
$(1)/obj/tests/%.o: tests/%.c $$(wildcard include/*.h src/core/*.h src/core/*/*.h tests/*.h) | $(1)/obj/tests
	$$(CC) $$(CFLAGS_BASE) $(2) -c $$< -o $$@
$(1)/obj/core $(1)/obj/core/source $(1)/obj/core/tree $(1)/obj/lua $(1)/obj/tests $(1)/lua/imagehealth:
	mkdir -p $$@
$(1)/libimagehealth.a: $$(CORE_SRC:src/%.c=$(1)/obj/%.o)
	rm -f $$@ && ar rcs $$@ $$^
# The C library for C programs: exports the public ih_* API only.
$(1)/libimagehealth.so: $$(CORE_SRC:src/%.c=$(1)/obj/%.o)
	$$(CC) $(2) -shared -o $$@ $$^ $$(LIBS)
# The Lua module: exports luaopen_* only (the core inside it stays private).
$(1)/lua/imagehealth/core.so: $$(LUA_SRC:src/%.c=$(1)/obj/%.o) $(1)/libimagehealth.a | $(1)/lua/imagehealth
	$$(CC) $(2) -shared -Wl,--exclude-libs,ALL -o $$@ $$(LUA_SRC:src/%.c=$(1)/obj/%.o) $(1)/libimagehealth.a $$(LIBS)
$(1)/ctest: $$(CTEST_SRC:tests/%.c=$(1)/obj/tests/%.o) $(1)/libimagehealth.a
	$$(CC) $(2) -o $$@ $$^ $$(LIBS)
endef

$(eval $(call flavour,$(B),$(OPT)))
$(eval $(call flavour,$(BA),-O1 -g $(SAN)))

asan: $(BA)/libimagehealth.a $(BA)/libimagehealth.so $(BA)/lua/imagehealth/core.so $(BA)/ctest \
      $(BA)/ih-host

# The C host under ASan+UBSan: every allocation of the process, Lua's own
# included, is seen by LeakSanitizer (the leaks suite, tests/leaks/).
$(BA)/ih-host: examples/host.c $(LUA_SRC:src/%.c=$(BA)/obj/%.o) $(BA)/libimagehealth.a
	$(CC) $(CFLAGS_BASE) -O1 -g $(SAN) -o $@ $^ $(shell pkg-config --libs lua5.4) $(LIBS)

# Lua paths so that everything runs from the checkout.
LUAENV = LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/?.lua;;" \
         LUA_CPATH="$(CURDIR)/$(1)/lua/?.so;;" IMAGEHEALTH_BUILD="$(CURDIR)/$(1)"
ASANENV = LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
          ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

BUSTED = $(LUA) /usr/bin/busted

deps:
	bash tools/install-deps

# eval "$(make -s env)" sets up a shell to use the module from the checkout
# (lua5.4 -l imagehealth).
env:
	@echo 'export LUA_PATH="$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;"'
	@echo 'export LUA_CPATH="$(CURDIR)/$(B)/lua/?.so;;"'

test:
	@bash tools/install-deps
	$(MAKE) all asan
	@bash tools/run-tests

test-c: all
	$(B)/ctest

test-lua: all
	$(call LUAENV,$(B)) $(BUSTED) spec

demo: 
	bash tools/install-deps
	$(MAKE) all
	bash examples/demo.sh

fuzz:
	bash fuzz/run

bench: all
	bash bench/scan

clean:
	rm -rf $(B) $(BA) build-fuzz

.PHONY: all asan deps env test test-c test-lua demo fuzz bench clean
