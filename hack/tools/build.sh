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
# Like helm's Makefile: the default Kubernetes version of `helm template`/`lint` follows the
# k8s.io/client-go that helm is built with (otherwise it claims v1.20 and rejects kubeVersion).
gomod=$(go mod download -json "helm.sh/helm/v3@${HELM_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
k8s_minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
[ -n "$k8s_minor" ] || { echo "cannot read k8s.io/client-go from $gomod" >&2; exit 1; }
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags="$ldflags -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
mv "$tmp/helm" "$out/helm"
echo "built in $(( $(date +%s) - start ))s: $("$out/helm" version --short) in $out" >&2
echo "$out"
