#!/usr/bin/env bash
# The Docker backend's machine setup (root, idempotent): docker.io and debootstrap, a running dockerd,
# and the base image binder-base:bookworm built from a debootstrapped Debian, since nothing can be pulled.
set -euo pipefail

BASE_IMAGE="${BINDER_DOCKER_BASE_IMAGE:-binder-base:bookworm}"
ROOTFS_IMAGE="binder-rootfs:bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_START_SECONDS=60
HERE="$(cd "$(dirname "$0")" && pwd)"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-docker.sh installs packages and starts dockerd: run it as root" >&2
    exit 1
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! docker info >/dev/null 2>&1; then
    # No init system to rely on (containers, CI): dockerd runs in the background, its log in a file.
    nohup dockerd >>"$DOCKERD_LOG" 2>&1 &
    deadline=$((SECONDS + DOCKERD_START_SECONDS))
    until docker info >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            echo "dockerd did not answer within ${DOCKERD_START_SECONDS}s; its log ($DOCKERD_LOG) ends with:" >&2
            tail -n 20 "$DOCKERD_LOG" >&2
            exit 1
        fi
        sleep 0.5
    done
fi

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "$BASE_IMAGE is present"
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
    debootstrap --variant=minbase bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
        tail -n 20 "$work/debootstrap.log" >&2
        exit 1
    }
    # debootstrap leaves the downloaded .debs in the root's apt cache: not part of an image.
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" -c . | docker import - "$ROOTFS_IMAGE"
    rm -rf "$work/rootfs"
fi

mkdir -p "$work/context/extra-ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$work/context/extra-ca-certificates/" 2>/dev/null || true
cp "$HERE/base.Dockerfile" "$work/context/Dockerfile"
DOCKER_BUILDKIT=0 docker build --quiet --tag "$BASE_IMAGE" "$work/context"
echo "$BASE_IMAGE is built"
