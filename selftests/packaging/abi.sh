#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# selftests/packaging/abi.sh BUILD_DIR: BUILD_DIR/libmitogen.so against the
# released ABI (packaging/check-abi.sh). Run from the source tree by
# test_packaging.
set -uo pipefail
build=${1:?usage: abi.sh BUILD_DIR}
if ! command -v abidiff >/dev/null; then
	echo "abidiff is not installed (abigail-tools) and scripts/deps.sh did not install it"
	exit 77
fi
exec bash packaging/check-abi.sh "$build/libmitogen.so"
