#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what is missing, makes sure the servers
# the service tests talk to are up (scripts/stack.sh: PostgreSQL, RabbitMQ, SeaweedFS, an SMTP
# sink), checks the code's form (rustfmt, clippy with warnings as errors, the checked SQL's
# .sqlx/ data), then runs every test
# and closes with the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/stack.sh
# The local S3 server's credentials (made by stack.sh, never committed).
source .stack/env
# Tesseract's OpenMP must see this when the library loads (one engine per worker thread).
export OMP_THREAD_LIMIT=1
# The code's form first: formatted (rustfmt.toml) and without a lint warning on any target.
echo "test: cargo fmt --check"
cargo fmt --all -- --check
echo "test: cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The SQL the macros checked (.sqlx/) is what the queries and migrations give today.
scripts/sqlx-prepare.sh --check
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
