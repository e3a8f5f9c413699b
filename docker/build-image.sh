#!/usr/bin/env bash
# Builds the image `redlock-redis:local` FROM scratch out of this machine's redis-server and
# redis-cli (plus their shared libraries found with ldd, the dynamic loader, dash + sleep for
# docker-compose.yml's cluster-init script, and rm for the fault suite's restart without
# data), for machines that cannot pull `redis:7.2`.
#
# Usage: docker/build-image.sh [tag]     then: export REDIS_IMAGE=redlock-redis:local
set -euo pipefail

tag="${1:-redlock-redis:local}"
need() { command -v "$1" >/dev/null || { echo "$1 not found: $2" >&2; exit 1; }; }
need docker "install docker (Debian: sudo apt-get install docker.io)"
need redis-server "install it with \`sudo apt-get install redis-server\`"
need redis-cli "install it with \`sudo apt-get install redis-tools\`"
need ldd "install libc-bin"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/bin" "$rootfs/data" "$rootfs/tmp" "$rootfs/usr/local/etc/redis"
chmod 1777 "$rootfs/tmp"

# name-in-image:binary-on-host. Symlinks are resolved (Debian's /usr/bin/redis-server points at
# redis-check-rdb, which picks its personality from argv[0], so the copy must be named redis-server).
binaries=(
  "usr/local/bin/redis-server:$(command -v redis-server)"
  "usr/local/bin/redis-cli:$(command -v redis-cli)"
  "bin/sh:/bin/sh"
  "bin/sleep:$(command -v sleep)"
  "bin/rm:$(command -v rm)"
)
for entry in "${binaries[@]}"; do
  target="${entry%%:*}"
  source="$(readlink -f "${entry#*:}")"
  cp "$source" "$rootfs/$target"
  # Shared libraries ("libx.so => /path (addr)") and the loader ("/lib64/ld-linux... (addr)"),
  # copied to the same paths with links resolved.
  ldd "$source" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
    while read -r lib; do
      mkdir -p "$rootfs/$(dirname "$lib")"
      cp -L "$lib" "$rootfs/$lib"
    done
done

cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin
WORKDIR /data
CMD ["redis-server"]
DOCKERFILE

docker build --quiet --tag "$tag" "$context" >/dev/null
docker run --rm --network none "$tag" redis-server --version >/dev/null
echo "built $tag; use it with:"
echo "export REDIS_IMAGE=$tag"
