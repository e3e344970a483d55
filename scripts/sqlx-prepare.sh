#!/usr/bin/env bash
# Compile-time checked SQL. `sqlx::query!` checks each query against the schema when the crate
# is built; a build without a database (CI, a newcomer's machine) reads what it needs from
# `.sqlx/`, which this script writes from a fresh database with every migration applied.
#   scripts/sqlx-prepare.sh          rewrite .sqlx/ (after changing a query or a migration)
#   scripts/sqlx-prepare.sh --check  fail when .sqlx/ is not what the queries and schema give
# Needs PostgreSQL on 127.0.0.1:5432 (scripts/stack.sh); the database it makes is dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[ "${1:-}" = "--check" ] && check=true
server="postgres://postgres@127.0.0.1:5432"
db="scanbureau_sqlx_$$"
out=$(mktemp -d)
trap 'psql "$server/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null; rm -rf "$out"' EXIT
psql "$server/postgres" -qc "CREATE DATABASE $db"
for m in migrations/*.sql; do
  psql -v ON_ERROR_STOP=1 -q "$server/$db" -f "$m" >/dev/null
done
# The macros run again only when their crate is compiled again.
touch services/src/lib.rs
DATABASE_URL="$server/$db" SQLX_OFFLINE_DIR="$out" cargo check -p scanbureau --lib --locked --quiet
touch services/src/lib.rs
if $check; then
  if ! diff -r "$out" .sqlx >/dev/null 2>&1; then
    echo "sqlx: .sqlx/ differs from what the queries and migrations give; run scripts/sqlx-prepare.sh and commit .sqlx/" >&2
    diff -r "$out" .sqlx >&2 || true
    exit 1
  fi
  echo "sqlx: .sqlx/ matches the queries and the schema"
else
  rm -rf .sqlx
  mkdir -p .sqlx
  if compgen -G "$out/*.json" >/dev/null; then cp "$out"/*.json .sqlx/; fi
  echo "sqlx: $(ls .sqlx | wc -l) queries written to .sqlx/"
fi
