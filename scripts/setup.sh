#!/usr/bin/env bash
# Installs what building, the tests and the benchmarks need beyond the Rust toolchain, on a fresh
# Debian machine: Tesseract and Leptonica (the classifier's OCR, linked through the `tesseract`
# crate, whose bindings bindgen generates with libclang), the French model, the DejaVu font
# (fixtures draw text with it), poppler-utils and pypdfium2 (the light PDFs are checked with both
# poppler and pdfium), the tesseract command (the OCR legibility benchmark), Debian's Chromium
# and the npm package playwright-core that drives it (the browser tests; no browser download).
# Idempotent: does nothing when everything is there.
#
# `--bench-tools` also installs OCRmyPDF, Ghostscript and pngquant, which the compression
# benchmark runs beside the job's own storage (not needed to build or test).
set -euo pipefail

need_apt=()
if [ "${1:-}" = "--bench-tools" ]; then
  command -v ocrmypdf >/dev/null 2>&1 || need_apt+=(ocrmypdf)
  command -v gs >/dev/null 2>&1 || need_apt+=(ghostscript)
  command -v pngquant >/dev/null 2>&1 || need_apt+=(pngquant)
fi
has_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
for pkg in libtesseract-dev libleptonica-dev libclang-dev pkg-config tesseract-ocr-fra libheif-dev; do
  has_pkg "$pkg" || need_apt+=("$pkg")
done
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
command -v pdftoppm >/dev/null 2>&1 || need_apt+=(poppler-utils)
command -v tesseract >/dev/null 2>&1 || need_apt+=(tesseract-ocr)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# pdfium comes in the pypdfium2 wheel; pinned so every machine checks against the same library.
PYPDFIUM_VERSION=5.15.2
if [ "$(python3 -m pip show pypdfium2 2>/dev/null | sed -n 's/^Version: //p')" != "$PYPDFIUM_VERSION" ]; then
  echo "setup: installing pypdfium2 $PYPDFIUM_VERSION"
  python3 -m pip install -q --disable-pip-version-check "pypdfium2==$PYPDFIUM_VERSION"
fi

# The browser tests' driver, pinned by tests/browser/package-lock.json.
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -f "$root/tests/browser/node_modules/playwright-core/package.json" ]; then
  echo "setup: installing playwright-core for the browser tests"
  (cd "$root/tests/browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
