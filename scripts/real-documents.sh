#!/usr/bin/env bash
# Gathers the real public documents the real-documents benchmark measures on, into DEST (outside
# the repository: their licences are their authors', and some show real people):
#
#   scripts/real-documents.sh /path/to/realdocs
#   REAL_DOCS=/path/to/realdocs cargo bench -p scanbureau --bench real_documents
#
# tests/real-documents/manifest.csv says where each file was published (GitHub repository,
# commit, path); each is taken at that commit, so the set never changes under the benchmark.
# tests/real-documents/truth.csv is copied beside them. With GIT_MIRRORS=dir, a bare clone at
# dir/owner+name (or in a folder of it, or a clone's .git there) is read instead of fetching from GitHub.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:?usage: scripts/real-documents.sh DEST}"
manifest="$root/tests/real-documents/manifest.csv"
mkdir -p "$dest/files"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/scanbureau-real-documents"

git_dir_of() {
  local repo="$1" m
  if [ -n "${GIT_MIRRORS:-}" ]; then
    for m in "$GIT_MIRRORS/${repo/\//+}" "$GIT_MIRRORS/${repo/\//+}"/* "$GIT_MIRRORS/${repo/\//+}"/*/.git; do
      [ -d "$m" ] && git --git-dir="$m" rev-parse --git-dir >/dev/null 2>&1 && { echo "$m"; return; }
    done
  fi
  m="$cache/${repo/\//+}.git"
  [ -d "$m" ] || git init -q --bare "$m"
  echo "$m"
}

got=0 missing=0
# file,repo,commit,path,licence,note (no commas inside the first four fields)
while IFS=, read -r file repo commit path _rest; do
  [ "$file" = file ] && continue
  [ -s "$dest/files/$file" ] && { got=$((got + 1)); continue; }
  gd="$(git_dir_of "$repo")"
  if ! git --git-dir="$gd" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "fetching $repo@${commit:0:10}" >&2
    git --git-dir="$gd" fetch -q --depth 1 "https://github.com/$repo" "$commit" || true
  fi
  if git --git-dir="$gd" show "$commit:$path" >"$dest/files/$file.part" 2>/dev/null; then
    mv "$dest/files/$file.part" "$dest/files/$file"
    got=$((got + 1))
  else
    rm -f "$dest/files/$file.part"
    echo "missing: $file ($repo $path)" >&2
    missing=$((missing + 1))
  fi
done <"$manifest"
cp "$root/tests/real-documents/truth.csv" "$dest/truth.csv"
echo "real documents: $got in $dest/files, $missing missing"
[ "$missing" -eq 0 ]
