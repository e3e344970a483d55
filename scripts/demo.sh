#!/usr/bin/env bash
# Runs the one-shot job on each bundled sample mailing with the embedded defaults (the bundled
# sample registry, named with --registry sample; filing plan and site configuration; no server). Results go to out/<sample>/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The classifier links Debian's Tesseract: install it (and the rest) when missing.
scripts/setup.sh
cargo build --release --locked -p scanbureau
bin=target/release/scanbureau
received="2026-11-18T09:12:00+01:00"
status=0
run() {
  local name=$1; shift
  echo
  echo "### $name"
  "$bin" process --registry sample --received-at "$received" --out "out/$name" "$@" || status=$?
}
run counter-mailing scans-samples/counter-mailing
run applicant-mailing scans-samples/applicant-mailing.tif
run portal-deposit --channel portal scans-samples/portal-deposit.pdf
run mail-deposit --channel mail scans-samples/mail-deposit.eml
echo
echo "Reports, pieces and notices are in out/*/ (report.json, pieces/, outbox/)."
exit $status
