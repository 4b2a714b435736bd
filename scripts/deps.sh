#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/deps.sh: install every Debian package that building, testing,
# fuzzing and benchmarking libmitogen needs (Debian 12).
#
# When every package is already installed it does nothing at all: no
# apt-get update, no network, no output. Otherwise it runs `apt-get update`
# once and installs what is missing; that needs root. Run by `make deps`
# and, through a stamp, before the first build in a tree.
set -euo pipefail

packages=(
	# building
	make gcc libc6-dev binutils
	libmsgpack-dev		# msgpack-c: values on the wire (static libmsgpackc.a)
	# testing: cmocka, prove (perl), timeout (coreutils)
	libcmocka-dev perl coreutils
	# sanitizer and libFuzzer builds (clang's runtimes live in libclang-rt)
	clang llvm libclang-rt-14-dev
	# make bench compares against the Python original
	python3-mitogen
	# kernel assistance and sandboxing (DESIGN.md section 6)
	libbpf-dev libelf-dev zlib1g-dev nettle-dev libseccomp-dev libcap-dev
	libnl-3-dev libnl-route-3-dev bpftool
	# real programs the selftests drive (DESIGN.md section 11)
	openssh-server openssh-client sudo rsync iproute2 util-linux
	opendoas		# mg_doas tests (skipped with a reason when absent)
	# login shells the first stage's command line is tested under
	# (test_ssh_login_shells; dash and bash are Debian's own)
	zsh mksh fish
	# containers (selftests/containers, docs/containers.md): images are
	# imported from a busybox-static rootfs; runc because crun refuses
	# this VM's hybrid cgroup layout; dockerd and lxc started by the tests
	podman runc docker.io lxc busybox-static
	# make install (manual pages) and the packaging test
	# (selftests/packaging/): .debs, lintian, the ABI baseline, completion
	scdoc pkgconf man-db bash-completion
	dpkg-dev debhelper fakeroot lintian abigail-tools
)

missing=()
status=$(dpkg-query -W -f='${Package} ${Status}\n' "${packages[@]}" 2>/dev/null || true)
for p in "${packages[@]}"; do
	if ! grep -qx "$p install ok installed" <<<"$status"; then
		missing+=("$p")
	fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing Debian packages: ${missing[*]}" >&2
	echo "deps.sh: run 'sudo scripts/deps.sh' (or 'sudo make deps') to install them" >&2
	exit 1
fi

echo "deps.sh: installing ${#missing[@]} Debian package(s): ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
