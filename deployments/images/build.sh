#!/usr/bin/env bash
# Builds the images the end-to-end suites and compose.yaml use, with no image
# registry: the fraudstream image FROM scratch out of bin/fraudstream, and —
# only when the official images cannot be pulled — Redis and PostgreSQL
# images from a debootstrap root file system imported with `docker import`.
#
# Image names come from the same variables as the e2e suites:
#   E2E_FRAUDSTREAM_IMAGE (fraudstream:dev)
#   E2E_REDIS_IMAGE       (redis:7)
#   E2E_POSTGRES_IMAGE    (postgres:15)
set -euo pipefail
cd "$(dirname "$0")/../.."

FRAUDSTREAM_IMAGE=${E2E_FRAUDSTREAM_IMAGE:-fraudstream:dev}
REDIS_IMAGE=${E2E_REDIS_IMAGE:-redis:7}
POSTGRES_IMAGE=${E2E_POSTGRES_IMAGE:-postgres:15}
BASE_IMAGE=local/fraudstream-deps:bookworm

log() { echo "images: $*" >&2; }

# 1. fraudstream, FROM scratch.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$stage/fraudstream" ./cmd/fraudstream
cp /etc/ssl/certs/ca-certificates.crt "$stage/"
echo 'nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin' > "$stage/passwd"
echo 'nonroot:x:65532:' > "$stage/group"
# The broker's --data-dir (and anything else a service keeps) lives under
# /var/lib/fraudstream, which the non-root user must be able to write.
mkdir -p "$stage/var/lib/fraudstream"
# Quiet unless it fails: the legacy builder's deprecation notice is noise.
build() { out=$(docker build -q "$@" 2>&1) || { echo "$out" >&2; return 1; }; }
build -f deployments/Dockerfile -t "$FRAUDSTREAM_IMAGE" "$stage"
log "built $FRAUDSTREAM_IMAGE"

have() { docker image inspect "$1" >/dev/null 2>&1; }

# 2. Redis and PostgreSQL: use what is there, else pull, else build locally.
need_local=()
for img in "$REDIS_IMAGE" "$POSTGRES_IMAGE"; do
  if have "$img"; then log "using $img"; continue; fi
  if timeout 60 docker pull -q "$img" >/dev/null 2>&1; then log "pulled $img"; continue; fi
  need_local+=("$img")
done
((${#need_local[@]})) || exit 0

if ! have "$BASE_IMAGE"; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  rootfs=$(mktemp -d)
  log "debootstrap bookworm with redis-server and postgresql from $mirror (about a minute)"
  debootstrap --variant=minbase --include=redis-server,postgresql bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "imported $BASE_IMAGE"
fi

for img in "${need_local[@]}"; do
  case "$img" in
    "$REDIS_IMAGE") dir=deployments/images/redis ;;
    "$POSTGRES_IMAGE") dir=deployments/images/postgres ;;
  esac
  build --build-arg BASE="$BASE_IMAGE" -t "$img" "$dir"
  log "built $img locally from $BASE_IMAGE"
done
