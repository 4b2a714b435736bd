# SPDX-License-Identifier: MIT
#
# libmitogen: one non-recursive make for everything. What goes into each
# artifact is listed in Kbuild; this file says how to build it.
#
#   make                 library (.a, .so), the `mitogen` tool, examples
#   make check           normal + ASan/UBSan trees, every selftest under
#                        prove (both trees), then check-symbols
#   make check-loaded    make check while N busy loops compete for the CPUs
#                        (N = LOAD_JOBS, default: nproc)
#   make bench           build/bench/bench, then scripts/bench.sh
#   make bench-fleet     the tool vs pdsh and clush on 100 sshd hosts (root)
#   make bench-files     copy/rsync vs pdcp, clush --copy, scp, rsync (root)
#   make fuzz            libFuzzer targets, each run FUZZ_SECONDS (30)
#   make run             build/mitogen call mg.uname; build/mitogen run -- uname -a
#   make install         PREFIX=/usr/local DESTDIR= LIBDIR= (libs, headers, .pc,
#                        tool, man pages, completion); make uninstall
#   make deps            install the Debian packages (scripts/deps.sh)
#   make deb | rpm       build/deb/*.deb (+ lintian) | build/rpm/RPMS/
#   make check-abi       libmitogen.so against packaging/abi/ (abidiff)
#   make check-symbols   exported ABI == MG_API declarations
#   make clean           remove build/
#   V=1                  show full commands
#
# Outputs, all under build/:
#   build/libmitogen.a build/libmitogen.so build/mitogen
#   build/examples/NAME build/selftests/AREA/NAME build/bench/bench
#   build/obj/...              objects and their .d files
#   build/asan/...             the same tree with -fsanitize=address,undefined
#   build/fuzz/NAME            libFuzzer targets (clang), objects in build/fuzz/obj
#
# The first build in a fresh tree runs scripts/deps.sh (through a stamp that
# is an order-only prerequisite of every object, so it never forces a
# rebuild), which makes one `make check` enough on a fresh Debian 12.

include Kbuild

BUILD := build

# --- tools and flags ---------------------------------------------------

# CC is make's default (cc, here gcc) unless given: make CC=clang.
ASAN_CC ?= $(CC)
FUZZ_CC ?= clang

# Highest _FORTIFY_SOURCE the compiler and libc accept without a warning.
FORTIFY := $(shell echo 'int main(void){return 0;}' | \
	$(CC) -O2 -D_FORTIFY_SOURCE=3 -Werror -x c - -o /dev/null 2>/dev/null \
	&& echo 3 || echo 2)

WARNINGS := -Wall -Wextra -Wshadow -Wno-unused-parameter \
	-Werror=implicit-function-declaration -Werror=format-security \
	-Werror=strict-prototypes -Werror=shadow -Werror=format

# Flags every tree shares. -fvisibility=hidden: only MG_API leaves the
# library. No -ffunction-sections/--gc-sections anywhere: the MG_EXPORT
# table lives in the `mg_exports` section, found through
# __start_mg_exports/__stop_mg_exports, which section GC would drop.
BASE_CFLAGS := -std=gnu11 -g $(WARNINGS) -fstack-protector-strong \
	-D_GNU_SOURCE -fPIC -fvisibility=hidden -pthread -Iinclude -I. \
	-I/usr/include/libnl3
DEPFLAGS := -MMD -MP

SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

# CFLAGS/LDFLAGS from the command line are added to every tree.
main_CFLAGS := $(BASE_CFLAGS) -O2 -D_FORTIFY_SOURCE=$(FORTIFY) $(CFLAGS)
# Sanitizer trees: -O1 for readable reports, no _FORTIFY_SOURCE (its
# checked wrappers hide accesses from the ASan interceptors).
asan_CFLAGS := $(BASE_CFLAGS) -O1 $(SAN_FLAGS) $(CFLAGS)
fuzz_CFLAGS := $(BASE_CFLAGS) -O1 $(SAN_FLAGS) -fsanitize=fuzzer-no-link $(CFLAGS)

main_CC := $(CC)
asan_CC := $(ASAN_CC)
fuzz_CC := $(FUZZ_CC)

main_DIR := $(BUILD)
asan_DIR := $(BUILD)/asan
fuzz_DIR := $(BUILD)/fuzz

# Shown in quiet mode: "  CC      [asan] core/value.o".
main_TAG :=
asan_TAG := [asan]
fuzz_TAG := [fuzz]

HARDEN_LDFLAGS := -Wl,-z,relro -Wl,-z,now

# Programs (tool, examples, bench) are static in the normal tree, so the
# image a context ships runs on any host of the same architecture. A
# sanitizer runtime cannot be linked -static: those trees link dynamically,
# with libmitogen still static.
main_PROG_LDFLAGS := -static $(HARDEN_LDFLAGS) $(LDFLAGS)
asan_PROG_LDFLAGS := $(SAN_FLAGS) $(HARDEN_LDFLAGS) $(LDFLAGS)
fuzz_PROG_LDFLAGS := $(SAN_FLAGS) -fsanitize=fuzzer $(LDFLAGS)
# The shared library: -z defs makes a missing definition a link error.
main_SO_LDFLAGS := -Wl,-z,defs $(HARDEN_LDFLAGS) $(LDFLAGS)
asan_SO_LDFLAGS := $(SAN_FLAGS) $(LDFLAGS)
fuzz_SO_LDFLAGS := $(SAN_FLAGS) $(LDFLAGS)
# Selftests: libmitogen static, cmocka dynamic (Debian ships no libcmocka.a).
main_TEST_LDFLAGS := $(HARDEN_LDFLAGS) $(LDFLAGS)
asan_TEST_LDFLAGS := $(SAN_FLAGS) $(HARDEN_LDFLAGS) $(LDFLAGS)

# What libmitogen needs, for static programs and for the shared library
# (Debian's libmsgpackc.a is not PIC, so the .so links libmsgpackc.so).
LIBS_STATIC := -l:libmsgpackc.a -l:libseccomp.a -l:libcap.a -l:libnl-route-3.a \
	-l:libnl-3.a -l:libz.a -l:libhogweed.a -l:libgmp.a -l:libnettle.a -pthread
LIBS_SHARED := -lmsgpackc -lseccomp -lcap -lnl-route-3 -lnl-3 -lz -lhogweed -lnettle -pthread
TEST_LIBS := -lcmocka

SONAME := libmitogen.so.0
VERSION := $(shell sed -n 's/^.define MG_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
	include/mitogen/common.h | paste -sd.)

# --- quiet output ------------------------------------------------------

# $(call msg,TAG,WHAT): "  CC      core/value.o" unless V=1, where make
# echoes the full command instead.
ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = printf '  %-7s %s\n' '$(1)' '$(2)';
endif

# --- names of things ----------------------------------------------------

# Sources listed in Kbuild as .c (one program each) and their objects.
# Programs are named after their source: examples/hello,
# selftests/core/test_value, and for fuzz targets the bare fuzz_value.
examples-names := $(basename $(examples-y))
selftest-names := $(basename $(selftests-y))
fuzz-names := $(notdir $(basename $(fuzz-y)))
bench-objs := $(bench-y:.c=.o)
all-objs := $(lib-y) $(mitogen-y) $(selftests-lib-y) $(bench-objs) \
	$(examples-y:.c=.o) $(selftests-y:.c=.o) $(fuzz-y:.c=.o)

# $(call in,TREE,PATHS): PATHS placed in TREE's output directory.
in = $(addprefix $($(1)_DIR)/,$(2))
# $(call obj,TREE,OBJECTS): where TREE compiles OBJECTS.
obj = $(addprefix $($(1)_DIR)/obj/,$(2))

DEPS_STAMP := $(BUILD)/.deps.stamp

# --- eBPF (bpf/) ---------------------------------------------- begin ---
#
# bpf/NAME.bpf.c (listed in Kbuild as bpf-y) -> build/bpf/NAME.bpf.o
# (clang -target bpf -g -O2) -> build/bpf/NAME.skel.h (bpftool gen
# skeleton, struct NAME_bpf), against build/bpf/vmlinux.h which bpftool
# generates from the running kernel's BTF (a build host without BTF gets a
# stand-in from the UAPI headers, which is all these programs use: the
# library then finds no BTF at run time and says so). Nothing of it is
# committed.
# libbpf, libelf and zlib link statically into static programs (Debian
# ships libbpf.a, libelf.a and libz.a; this libelf needs nothing else).
BPF_DIR := $(BUILD)/bpf
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
bpf-skels := $(patsubst bpf/%.bpf.c,$(BPF_DIR)/%.skel.h,$(bpf-y))
BPF_MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

$(BPF_DIR)/vmlinux.h: | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(Q)$(call msg,GEN,bpf/vmlinux.h)if [ -r $(VMLINUX_BTF) ]; then \
		$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c >$@; \
	else \
		echo "warning: no $(VMLINUX_BTF): bpf/vmlinux.h from the UAPI headers" >&2; \
		printf '%s\n' '#include <linux/types.h>' '#include <linux/bpf.h>' \
			'typedef __u32 uint32_t; typedef __u64 uint64_t; typedef _Bool bool;' \
			'enum { false = 0, true = 1 };' >$@; \
	fi

$(BPF_DIR)/%.bpf.o: bpf/%.bpf.c bpf/shared.h core/wire.h $(BPF_DIR)/vmlinux.h
	$(Q)$(call msg,BPF,bpf/$*.bpf.o)$(BPF_CLANG) -target bpf -mcpu=v3 -g -O2 -Wall \
		-I. -I$(BPF_DIR) $(if $(BPF_MULTIARCH),-idirafter /usr/include/$(BPF_MULTIARCH)) \
		-c -o $@ $<

$(BPF_DIR)/%.skel.h: $(BPF_DIR)/%.bpf.o
	$(Q)$(call msg,GEN,bpf/$*.skel.h)$(BPFTOOL) gen skeleton $< name $*_bpf >$@

# bpf/*.c include the skeletons, in every tree.
$(foreach t,main asan fuzz,$(eval \
$(call obj,$(t),$(bpf-user-y)): $(bpf-skels)))
$(foreach t,main asan fuzz,$(eval \
$(call obj,$(t),$(bpf-user-y)): $(t)_CFLAGS += -I$(BPF_DIR)))

LIBS_STATIC += -l:libbpf.a -l:libelf.a -l:libz.a
LIBS_SHARED += -lbpf -lelf -lz
# --- eBPF (bpf/) ------------------------------------------------ end ---

# --- one tree -----------------------------------------------------------
#
# $(call tree,NAME) defines the rules of one build tree, with the compiler
# $(NAME_CC), flags $(NAME_CFLAGS), link flags $(NAME_PROG_LDFLAGS),
# $(NAME_SO_LDFLAGS) and $(NAME_TEST_LDFLAGS), and output directory
# $(NAME_DIR). A tree builds only what a target asks of it: the fuzz tree,
# say, only its library.
define tree
# Every object: compiled from the same path under the source tree. The
# .flags file changes (and rebuilds everything) only when the flags do.
$$($(1)_DIR)/obj/%.o: %.c $$($(1)_DIR)/.flags | $$(DEPS_STAMP)
	@mkdir -p $$(@D)
	$$(Q)$$(call msg,CC,$$(strip $$($(1)_TAG) $$*.o))$$($(1)_CC) $$($(1)_CFLAGS) $$(DEPFLAGS) -c -o $$@ $$<

$$($(1)_DIR)/.flags: FORCE
	@mkdir -p $$(@D)
	@echo '$$($(1)_CC) $$($(1)_CFLAGS)' | cmp -s - $$@ || echo '$$($(1)_CC) $$($(1)_CFLAGS)' >$$@

$$($(1)_DIR)/libmitogen.a: $$(call obj,$(1),$$(lib-y))
	$$(Q)$$(call msg,AR,$$(strip $$($(1)_TAG) $$(notdir $$@)))rm -f $$@ && ar rcs $$@ $$^

# soname libmitogen.so.0; exports only what libmitogen.map lets out.
$$($(1)_DIR)/libmitogen.so: $$(call obj,$(1),$$(lib-y)) libmitogen.map
	$$(Q)$$(call msg,LD,$$(strip $$($(1)_TAG) $$(notdir $$@)))$$($(1)_CC) -shared -pthread \
		-Wl,-soname,$$(SONAME) -Wl,--version-script=libmitogen.map \
		$$($(1)_SO_LDFLAGS) -o $$@ $$(filter %.o,$$^) $$(LIBS_SHARED)

$$($(1)_DIR)/mitogen: $$(call obj,$(1),$$(mitogen-y)) $$($(1)_DIR)/libmitogen.a
	@mkdir -p $$(@D)
	$$(Q)$$(call msg,LD,$$(strip $$($(1)_TAG) mitogen))$$($(1)_CC) $$($(1)_PROG_LDFLAGS) -o $$@ $$^ $$(LIBS_STATIC)

$$(call in,$(1),$$(examples-names)): $$($(1)_DIR)/%: $$($(1)_DIR)/obj/%.o $$($(1)_DIR)/libmitogen.a
	@mkdir -p $$(@D)
	$$(Q)$$(call msg,LD,$$(strip $$($(1)_TAG) $$*))$$($(1)_CC) $$($(1)_PROG_LDFLAGS) -o $$@ $$^ $$(LIBS_STATIC)

$$(call in,$(1),$$(selftest-names)): $$($(1)_DIR)/%: $$($(1)_DIR)/obj/%.o \
		$$(call obj,$(1),$$(selftests-lib-y)) $$($(1)_DIR)/libmitogen.a
	@mkdir -p $$(@D)
	$$(Q)$$(call msg,LD,$$(strip $$($(1)_TAG) $$*))$$($(1)_CC) $$($(1)_TEST_LDFLAGS) -o $$@ $$^ \
		$$(LIBS_STATIC) $$(TEST_LIBS)

$$($(1)_DIR)/bench/bench: $$(call obj,$(1),$$(bench-objs)) $$($(1)_DIR)/libmitogen.a
	@mkdir -p $$(@D)
	$$(Q)$$(call msg,LD,$$(strip $$($(1)_TAG) bench/bench))$$($(1)_CC) $$($(1)_PROG_LDFLAGS) -o $$@ $$^ $$(LIBS_STATIC)

# The built-in seccomp profiles are .incbin'd into profiles.o, which the
# compiler's .d files cannot know.
$$(call obj,$(1),sandbox/profiles.o): $$(wildcard sandbox/profiles/*.policy)

# Header dependencies the compiler wrote (-MMD -MP) for objects built so far.
-include $$(wildcard $$(call obj,$(1),$$(all-objs:.o=.d)))
endef

$(eval $(call tree,main))
$(eval $(call tree,asan))
$(eval $(call tree,fuzz))

# libFuzzer targets: build/fuzz/NAME from selftests/fuzz/NAME.c (any
# directory: the name is the file's), against the fuzz tree's library.
fuzz-bins := $(addprefix $(fuzz_DIR)/,$(fuzz-names))
$(foreach f,$(fuzz-y),$(eval \
$(fuzz_DIR)/$(notdir $(basename $(f))): $(call obj,fuzz,$(f:.c=.o)) $(fuzz_DIR)/libmitogen.a))
$(fuzz-bins):
	@mkdir -p $(@D)
	$(Q)$(call msg,LD,[fuzz] $(notdir $@))$(fuzz_CC) $(fuzz_PROG_LDFLAGS) -o $@ $^ $(LIBS_STATIC)

# --- what each target builds -------------------------------------------

# $(call outputs,TREE): the library, the tool and the examples of TREE.
outputs = $($(1)_DIR)/libmitogen.a $($(1)_DIR)/libmitogen.so \
	$($(1)_DIR)/mitogen $(call in,$(1),$(examples-names))
selftests = $(call in,$(1),$(selftest-names))

.DEFAULT_GOAL := all
.PHONY: all lib tool examples selftests asan bench bench-bin fuzz fuzz-bins \
	check check-loaded check-symbols run deps install uninstall clean help FORCE

all: $(call outputs,main)
lib: $(main_DIR)/libmitogen.a $(main_DIR)/libmitogen.so
tool: $(main_DIR)/mitogen
examples: $(call in,main,$(examples-names))
selftests: $(call selftests,main)
asan: $(call outputs,asan) $(call selftests,asan)
bench-bin: $(main_DIR)/bench/bench
fuzz-bins: $(fuzz-bins)

# --- deps ---------------------------------------------------------------

# `make deps` always asks; the stamp makes the first build of a tree ask
# once (and again when scripts/deps.sh changes).
deps:
	$(Q)bash scripts/deps.sh

$(DEPS_STAMP): scripts/deps.sh
	$(Q)bash scripts/deps.sh
	@mkdir -p $(@D) && touch $@

# --- check --------------------------------------------------------------

# Everything is built first (both trees, the bench and the fuzz targets, so
# none of them can rot), then scripts/run-tests.sh runs the selftests of
# build/ and of build/asan/ under prove, then check-symbols. TESTS= on the
# command line picks some: make check TESTS=selftests/core/test_value
# (an environment variable TESTS is ignored: CI must run them all).
#
# Each test binary may run TEST_TIMEOUT seconds (environment; default here
# 1800, not run-tests.sh's own 300): the watchdog is there to catch hangs,
# and a busy machine runs a test several times slower (ASan test_scale,
# ~100 s of CPU work, was killed at 300 s at load 30-120 on 2 CPUs).
check-tests := $(if $(filter command line,$(origin TESTS)),$(TESTS),$(selftest-names))
check-env = TEST_TIMEOUT=$${TEST_TIMEOUT:-1800} ASAN_CC='$(ASAN_CC)'
check: all $(call selftests,main) asan bench-bin fuzz-bins
	$(Q)$(check-env) bash scripts/run-tests.sh $(check-tests)

# The same on a busy machine: LOAD_JOBS busy loops (default: one per CPU)
# at the tests' own priority run for as long as the suite does, so that a
# test that depends on how fast an idle machine is fails here. The loops
# end with the run however it ends: killed by the trap, reached by an
# interrupt (make's process group), and each stops by itself once the
# shell that started it is gone (even killed). CI runs plain `make check`.
LOAD_JOBS ?= $(shell nproc)
check-loaded: all $(call selftests,main) asan bench-bin fuzz-bins
	$(Q)pids=; trap 'kill $$pids 2>/dev/null; wait $$pids 2>/dev/null' EXIT; \
	for i in $$(seq $(LOAD_JOBS)); do \
		( trap - EXIT; while [ -d /proc/$$$$ ]; do :; done ) & pids="$$pids $$!"; \
	done; \
	echo "check-loaded: $(LOAD_JOBS) busy loops:$$pids"; \
	$(check-env) bash scripts/run-tests.sh $(check-tests)

check-symbols: $(main_DIR)/libmitogen.so
	$(Q)bash scripts/check-symbols.sh $<

# --- bench, fuzz, run ---------------------------------------------------

ifneq ($(filter bench,$(MAKECMDGOALS)),)
ifeq ($(wildcard scripts/bench.sh),)
$(error make bench: scripts/bench.sh does not exist yet; it is what runs \
	build/bench/bench against python3-mitogen and prints the table)
endif
endif

bench: all $(main_DIR)/bench/bench
	$(Q)BENCH=$(main_DIR)/bench/bench MITOGEN=$(main_DIR)/mitogen bash scripts/bench.sh

# The tool against pdsh and clush over 100 sshd hosts on 127.0.3.x (root;
# installs pdsh and clustershell when missing): scripts/bench-fleet.sh.
.PHONY: bench-fleet
bench-fleet: all
	$(Q)MITOGEN=$(main_DIR)/mitogen bash scripts/bench-fleet.sh

# File transfer (issue 17 section 6) against pdcp, clush --copy, scp and
# rsync on 33 sshd hosts (root; installs pdsh and clustershell when
# missing): scripts/bench-files.sh.
.PHONY: bench-files
bench-files: all
	$(Q)MITOGEN=$(main_DIR)/mitogen bash scripts/bench-files.sh

FUZZ_SECONDS ?= 30
# Each target runs FUZZ_SECONDS on its corpus in build/fuzz/corpus/NAME,
# seeded from selftests/fuzz/corpus/NAME when that exists; crashes are kept
# as build/fuzz/artifacts/NAME-crash-*.
fuzz: $(fuzz-bins)
	$(Q)set -e; for f in $(fuzz-names); do \
		echo "== fuzz $$f, $(FUZZ_SECONDS) s =="; \
		mkdir -p $(fuzz_DIR)/corpus/$$f $(fuzz_DIR)/artifacts; \
		seed=selftests/fuzz/corpus/$$f; [ -d $$seed ] || seed=; \
		$(fuzz_DIR)/$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(fuzz_DIR)/artifacts/$$f- \
			$(fuzz_DIR)/corpus/$$f $$seed; \
	done

run: $(main_DIR)/mitogen
	$(main_DIR)/mitogen call mg.uname
	$(main_DIR)/mitogen run -- uname -a

# --- install ------------------------------------------------------------
#
# make install PREFIX=/usr/local DESTDIR= LIBDIR=$(PREFIX)/lib/<multiarch>
# installs the shared library (libmitogen.so.VERSION, its SONAME link
# libmitogen.so.0 and the libmitogen.so link for -lmitogen; symbols
# versioned by libmitogen.map), the static archive, the headers,
# mitogen.pc, the static `mitogen` tool, the manual pages (from man/*.scd
# through scdoc) and the bash completion. make uninstall removes exactly
# those. packaging/debian/rules and packaging/rpm/libmitogen.spec call
# both with DESTDIR. After a plain `sudo make install`, run ldconfig.

PREFIX ?= /usr/local
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib$(if $(MULTIARCH),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SCDOC ?= scdoc

man-pages := $(patsubst man/%.scd,$(BUILD)/man/%,$(wildcard man/*.scd))

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(@D)
	$(Q)$(call msg,SCDOC,man/$*)$(SCDOC) <$< >$@

.PHONY: man
man: $(man-pages)

# Regenerated every time: it records PREFIX and friends.
$(BUILD)/mitogen.pc: packaging/mitogen.pc.in FORCE
	@mkdir -p $(@D)
	$(Q)$(call msg,GEN,mitogen.pc)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' $< >$@

install: all man $(BUILD)/mitogen.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR)/mitogen $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 0644 include/mitogen/*.h $(DESTDIR)$(INCLUDEDIR)/mitogen/
	install -m 0644 $(main_DIR)/libmitogen.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(main_DIR)/libmitogen.so $(DESTDIR)$(LIBDIR)/libmitogen.so.$(VERSION)
	ln -sf libmitogen.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmitogen.so
	install -m 0755 $(main_DIR)/mitogen $(DESTDIR)$(BINDIR)/mitogen
	install -m 0644 $(BUILD)/mitogen.pc $(DESTDIR)$(PKGCONFIGDIR)/mitogen.pc
	for m in $(notdir $(man-pages)); do \
		install -m 0644 $(BUILD)/man/$$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m || exit; \
	done
	install -m 0644 completion/mitogen.bash $(DESTDIR)$(BASHCOMPDIR)/mitogen

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/mitogen/,$(notdir $(wildcard include/mitogen/*.h)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/mitogen
	rm -f $(DESTDIR)$(LIBDIR)/libmitogen.a $(DESTDIR)$(LIBDIR)/libmitogen.so \
		$(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libmitogen.so.$(VERSION) \
		$(DESTDIR)$(BINDIR)/mitogen $(DESTDIR)$(PKGCONFIGDIR)/mitogen.pc \
		$(DESTDIR)$(BASHCOMPDIR)/mitogen
	for m in $(notdir $(man-pages)); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; done

# --- packages and ABI ---------------------------------------------------

# make deb: build/deb/*.deb (dpkg-buildpackage -us -uc -b, then lintian);
# make rpm: build/rpm/RPMS/ (rpmbuild; on Debian RPMBUILD_FLAGS=--nodeps);
# make check-abi: build/libmitogen.so against the released ABI
# (packaging/abi/, abidiff; ABI_UPDATE=1 records a new baseline).
.PHONY: deb rpm check-abi
deb:
	$(Q)DEB_BUILD_OPTIONS="$${DEB_BUILD_OPTIONS:-nocheck parallel=2}" bash packaging/build-deb.sh
rpm:
	$(Q)bash packaging/build-rpm.sh
check-abi: $(main_DIR)/libmitogen.so
	$(Q)bash packaging/check-abi.sh $<

# --- misc ---------------------------------------------------------------

clean:
	rm -rf $(BUILD)

help:
	@sed -n '/^#   make/,/^#   V=1/s/^# //p' $(firstword $(MAKEFILE_LIST))

FORCE:

# A failed command must not leave a half-written target behind.
.DELETE_ON_ERROR:
