#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tesseract serves the OCR benchmark only; the tests do not need it.
SCANBUREAU_SKIP_OCR=1 scripts/setup.sh
cargo test --workspace --locked "$@"
