#!/usr/bin/env bash
# Builds the pinned developer tools (helm) from their Go modules into a cache outside the repo and
# prints the directory holding them. Skips the build when the cache already holds every binary.
#   OXYGEN_CACHE (default ~/.cache/oxygen) — where binaries land
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"
cache=${OXYGEN_CACHE:-$HOME/.cache/oxygen}
out="$cache/tools/helm-${HELM_VERSION}"

if [ -x "$out/helm" ]; then echo "$out"; exit 0; fi

mkdir -p "$out"
export CGO_ENABLED=0
start=$(date +%s)
echo "building helm ${HELM_VERSION}..." >&2
# helm's go.mod has no replace directives, so `go install module@version` builds it as released
# (its own go.sum pins every dependency). The version is stamped the way helm's Makefile does it.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
ldflags="$ldflags -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
mv "$tmp/helm" "$out/helm"
echo "built in $(( $(date +%s) - start ))s: $("$out/helm" version --short) in $out" >&2
echo "$out"
