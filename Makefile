# cyrus-mboxevent: `make demo` shows it, `make check` tests it.
PREFIX  ?= /usr/local
VERSION := 0.1.0
SONAME  := libcyrus_mboxevent.so.0
B       := build
LIBDIR  := $(B)/lib
CFLAGS_TEST := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Iinclude -pthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LINK    := -L$(LIBDIR) -lcyrus_mboxevent -Wl,-rpath,$(CURDIR)/$(LIBDIR)
C_TESTS := test_api golden_test
# The Cyrus series of `make cyrus`, `make cyrus-stock` and `make demo`: 3.6 (3.6.1),
# 3.10 (3.10.2) or 3.12 (3.12.4), each with its patch series in cyrus-patch/patches/<series>/.
# 3.6.1 builds in build/cyrus, 3.10.2 in build/cyrus-3.10, 3.12.4 in build/cyrus-3.12
# (the same table as tests/e2e/e2elib.py's SERIES).
CYRUS   ?= 3.6
cyrus_series = $(patsubst 3.6.1,3.6,$(patsubst 3.10.2,3.10,$(patsubst 3.12.4,3.12,$(1))))
cyrus_out = $(CURDIR)/$(B)/$(if $(filter 3.6,$(call cyrus_series,$(1))),cyrus,cyrus-$(call cyrus_series,$(1)))
CYRUS_OUT = $(call cyrus_out,$(CYRUS))
# The series `make check` runs end to end (e2e-all).
E2E_SERIES ?= 3.6 3.10 3.12

.PHONY: relay test-relay demo-relay e2e e2e-3.10 e2e-3.12 e2e-all patch-check demo-library bench bench-check cyrus cyrus-stock all lib check test-rust test-c test-c-san test-golden test-install header-check lint demo install clean

all: lib

# The cargo build regenerates include/cyrus_mboxevent.h (build.rs).
lib:
	cargo build --release
	mkdir -p $(LIBDIR)
	install -m 0755 target/release/libcyrus_mboxevent.so $(LIBDIR)/libcyrus_mboxevent.so.$(VERSION)
	ln -sf libcyrus_mboxevent.so.$(VERSION) $(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(LIBDIR)/libcyrus_mboxevent.so
	install -m 0644 target/release/libcyrus_mboxevent.a $(LIBDIR)/

$(B)/%: tests/c/%.c tests/c/harness.h tests/c/rig.h include/cyrus_mboxevent.h | lib
	gcc $(CFLAGS_TEST) -o $@ $< $(LINK)

$(B)/%-san: tests/c/%.c tests/c/harness.h tests/c/rig.h include/cyrus_mboxevent.h | lib
	gcc $(CFLAGS_TEST) $(SAN) -o $@ $< $(LINK)

$(B)/golden_test: tests/golden/golden_test.c include/cyrus_mboxevent.h | lib
	gcc $(CFLAGS_TEST) -o $@ $< $(LINK)

$(B)/golden_test-san: tests/golden/golden_test.c include/cyrus_mboxevent.h | lib
	gcc $(CFLAGS_TEST) $(SAN) -o $@ $< $(LINK)

check: lib header-check lint test-rust test-relay test-c test-c-san test-golden test-install test-hardening test-hardening-san e2e-all patch-check bench-check
	@echo "make check: all passed"

# The committed header must be what build.rs generates.
header-check: lib
	git diff --exit-code -- include/ || { echo "include/ is stale: commit the regenerated header"; exit 1; }

# The fuzz targets are a crate of their own: checked here so that they keep
# up with the library (running them needs nightly: make fuzz).
lint:
	python3 tests/layers.py
	cargo fmt --all --check
	cargo clippy --all-targets --release -- -D warnings
	cargo clippy -p cmev-relay --all-targets --release -- -D warnings
	cargo check --manifest-path fuzz/Cargo.toml --bins

test-rust:
	cargo test --release

# cmev-relay (relay/README.md): its unit tests, then the real parts: a
# nats-server with JetStream and authentication, the relay binary, an HTTP
# receiver (needs nats-server, and root for the disk test's tmpfs; about 1 minute).
relay:
	cargo build --release -p cmev-relay

test-relay:
	cargo test --release -p cmev-relay

test-c: $(B)/test_api $(B)/test_delivery $(B)/test_spool
	$(B)/test_api
	$(B)/test_delivery
	$(B)/test_spool

test-c-san: $(B)/test_api-san $(B)/test_delivery-san $(B)/test_spool-san $(B)/golden_test-san
	ASAN_OPTIONS=detect_leaks=1 $(B)/test_api-san
	ASAN_OPTIONS=detect_leaks=1 $(B)/test_delivery-san
	ASAN_OPTIONS=detect_leaks=1 $(B)/test_spool-san
	ASAN_OPTIONS=detect_leaks=1 $(B)/golden_test-san tests/golden/cases.txt

test-golden: $(B)/golden_test
	$(B)/golden_test tests/golden/cases.txt

# `make install` into a staging prefix: soname, pkg-config and header work.
STAGE := $(CURDIR)/$(B)/stage
PC    := PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config
test-install: lib
	rm -rf $(STAGE)
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)
	readelf -d $(STAGE)/lib/libcyrus_mboxevent.so | grep -q 'SONAME.*\[libcyrus_mboxevent.so.0\]'
	gcc $(CFLAGS_TEST) $$($(PC) --cflags cyrus_mboxevent) -o $(B)/demo-installed examples/demo.c \
	  $$($(PC) --libs cyrus_mboxevent) -Wl,-rpath,$(STAGE)/lib
	$(B)/demo-installed > /dev/null
	@echo "test-install: passed"

# Side-by-side benchmarks (benches/README.md); results in build/bench/results.md
# and benches/results/.
bench: lib
	benches/run.sh

# The benchmark programs still compile (after e2e, whose Cyrus build installs
# the jansson headers that hotpath.c needs).
bench-check:
	benches/run.sh check

# A patched Cyrus linked to this library, with cyrus-patch/patches/$(CYRUS)
# (cached: seconds when nothing changed).
MBOXEVENT := $(CURDIR)/$(B)/mboxevent
cyrus: lib
	$(MAKE) --no-print-directory install PREFIX=$(MBOXEVENT) >/dev/null
	cyrus-patch/build-cyrus.sh --series $(CYRUS) --patched $(MBOXEVENT) $(CYRUS_OUT)

# The same source, unpatched, for side-by-side comparisons. `make cyrus-stock CYRUS=3.10`:
# Debian trixie's 3.10.2 (upstream tarball, unpatched, with idled) in build/cyrus-3.10/stock;
# CYRUS=3.12: sid's 3.12.4 (the same, from Debian forky/sid) in build/cyrus-3.12/stock.
cyrus-stock:
	cyrus-patch/build-cyrus.sh --series $(CYRUS) $(CYRUS_OUT)

# The main demo: a patched Cyrus on loopback, a short real session, events live
# (`make demo CYRUS=3.10` or `CYRUS=3.12`: Cyrus 3.10.2 or 3.12.4, an IDLE client told of the
# changes too).
demo: lib
	CYRUS=$(CYRUS) cyrus-patch/demo.sh

# The same session with cmev-relay in notifyd's place, a nats-server with JetStream and a
# consumer printing the stream's events with their ids (needs root and nats-server).
demo-relay: lib
	DEMO_RELAY=1 CYRUS=$(CYRUS) cyrus-patch/demo.sh

# The library alone: one event of each type into a listener, no Cyrus.
demo-library: $(B)/demo
	$(B)/demo

# End to end: the patched Cyrus 3.6.1 against stock's golden events, plus the
# checks stock cannot pass (needs root; about 3 minutes once Cyrus is built, and
# 1 to 2.5 more for durability.py: longer while events are lost, as it waits for them).
e2e: cyrus cyrus-stock
	tests/e2e/run.sh --no-build

# End to end on Cyrus 3.10.2: the patched build against the 3.10.1 golden events (the
# same named rules as 3.6.1), the unpatched build replaying them exactly, IDLE/NOTIFY
# through idled on both (tests/e2e/idle.py, event_notifier unset and set).
e2e-3.10:
	$(MAKE) --no-print-directory cyrus cyrus-stock CYRUS=3.10
	tests/e2e/run.sh --no-build --series 3.10

# The same on Cyrus 3.12.4 against its own golden capture (tests/golden/stock-3.12.4-*,
# taken from an unpatched upstream 3.12.4): 3.10's checks, rules and IDLE/NOTIFY runs.
e2e-3.12:
	$(MAKE) --no-print-directory cyrus cyrus-stock CYRUS=3.12
	tests/e2e/run.sh --no-build --series 3.12

# make check's end-to-end part: the Cyrus builds of every series in E2E_SERIES (two series
# side by side, make -j2: each series' patched, then its unpatched build), then
# tests/e2e/run.sh for all of them at once, each series in a mount namespace with its own
# /dev (tests/e2e/README.md): the same checks as e2e, e2e-3.10 and e2e-3.12 one after the
# other, in about the time of the longest, because the e2e runs mostly wait while the builds
# compute (docs/design.md, "make check runs every series' end-to-end tests at once").
comma := ,
e2e-all: lib
	$(MAKE) --no-print-directory install PREFIX=$(MBOXEVENT) >/dev/null
	$(MAKE) --no-print-directory -j2 --output-sync=target $(E2E_SERIES:%=cyrus-both-%)
	tests/e2e/run.sh --no-build --series $(subst $() ,$(comma),$(strip $(E2E_SERIES)))

# Both builds of one series, without the library step (e2e-all has done it once).
cyrus-both-%:
	cyrus-patch/build-cyrus.sh --series $* --patched $(MBOXEVENT) $(call cyrus_out,$*)
	cyrus-patch/build-cyrus.sh --series $* $(call cyrus_out,$*)

# Each series' patches apply to the upstream tarball and to Debian's patched tree
# (bookworm's 3.6.1, trixie's 3.10.2, sid's 3.12.4).
patch-check: cyrus
	cyrus-patch/build-cyrus.sh --series 3.10 --fetch-only $(B)/cyrus-3.10 >/dev/null
	cyrus-patch/build-cyrus.sh --series 3.12 --fetch-only $(B)/cyrus-3.12 >/dev/null
	cyrus-patch/check-apply.sh --series 3.6 $(B)/cyrus/src
	cyrus-patch/check-apply.sh --series 3.10 $(B)/cyrus-3.10/src
	cyrus-patch/check-apply.sh --series 3.12 $(B)/cyrus-3.12/src

$(B)/demo: examples/demo.c tests/c/harness.h include/cyrus_mboxevent.h | lib
	gcc $(CFLAGS_TEST) -o $@ $< $(LINK)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIBDIR)/libcyrus_mboxevent.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libcyrus_mboxevent.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libcyrus_mboxevent.so
	install -m 0644 $(LIBDIR)/libcyrus_mboxevent.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0644 include/cyrus_mboxevent.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' cyrus_mboxevent.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/cyrus_mboxevent.pc

clean:
	cargo clean
	rm -rf $(B)

# ---- hardening: panic injection, hostile input, faults, valgrind, fuzzing
FAULT_LIB    := $(B)/fault/lib
FUZZ_SECONDS ?= 1200

.PHONY: lib-fault test-hardening test-hardening-san test-valgrind fuzz fuzz-short

# The library built with `--features fault-injection` (CMEV_FAULT_PANIC), for test_panic only; never installed.
lib-fault:
	cargo build --release --features fault-injection --target-dir $(B)/fault
	mkdir -p $(FAULT_LIB)
	install -m 0755 $(B)/fault/release/libcyrus_mboxevent.so $(FAULT_LIB)/libcyrus_mboxevent.so.$(VERSION)
	ln -sf libcyrus_mboxevent.so.$(VERSION) $(FAULT_LIB)/$(SONAME)
	ln -sf $(SONAME) $(FAULT_LIB)/libcyrus_mboxevent.so

$(B)/test_panic: tests/c/test_panic.c tests/c/harness.h tests/c/rig.h include/cyrus_mboxevent.h | lib-fault
	gcc $(CFLAGS_TEST) -o $@ $< -L$(FAULT_LIB) -lcyrus_mboxevent -Wl,-rpath,$(CURDIR)/$(FAULT_LIB)

$(B)/test_delivery $(B)/test_delivery-san $(B)/test_hostile $(B)/test_hostile-san $(B)/test_faults $(B)/test_faults-san: tests/c/rig.h

test-hardening: $(B)/test_panic $(B)/test_hostile $(B)/test_faults
	$(B)/test_panic
	$(B)/test_hostile
	$(B)/test_faults

# CMEV_TEST_SLOW: time bounds x3 under the sanitizers (and a loaded CI host).
test-hardening-san: $(B)/test_hostile-san $(B)/test_faults-san
	ASAN_OPTIONS=detect_leaks=1 CMEV_TEST_SLOW=3 $(B)/test_hostile-san
	ASAN_OPTIONS=detect_leaks=1 CMEV_FAULTS_SCALE=0.3 $(B)/test_faults-san

# Plain (non-ASan) builds under memcheck; fails on any valgrind error in any process.
test-valgrind: $(B)/test_api $(B)/test_hostile
	tests/valgrind.sh $(B)/test_api $(B)/test_hostile

fuzz-short:
	fuzz/run.sh 60

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)
