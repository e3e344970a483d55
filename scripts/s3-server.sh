#!/usr/bin/env bash
# Runs SeaweedFS's all-in-one server in the foreground, on loopback only, with the identities
# of IDENTITIES (SeaweedFS's S3 JSON; scripts/stack.sh writes one with a fresh secret), keeping
# its data in DIR.
#   scripts/s3-server.sh DIR S3_PORT IDENTITIES
# The other ports follow S3_PORT (+1 master, +2 volume, +3 filer, +4 admin; gRPC +10000),
# so several instances can run side by side.
# Every bucket (each test makes its own) takes volumes of its own: allow many small ones rather
# than the few large ones SeaweedFS sizes from the free disk space.
set -euo pipefail
dir=$1
port=$2
identities=$3
mkdir -p "$dir/tmp" "$dir/log"
# Its sockets and logs in DIR too, not in /tmp: removing DIR leaves nothing behind.
export TMPDIR="$dir/tmp"
exec weed -logdir="$dir/log" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.port="$port" -master.port=$((port + 1)) -volume.port=$((port + 2)) -filer.port=$((port + 3)) \
  -admin.port=$((port + 4)) -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
  -volume.max=2000 -master.volumeSizeLimitMB=128 -s3.config="$identities" \
  -filer.localSocket="$dir/tmp/filer.sock" -s3.localSocket="$dir/tmp/s3.sock"
