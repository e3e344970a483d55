#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked "$@"
