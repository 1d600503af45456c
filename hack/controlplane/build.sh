#!/usr/bin/env bash
# Builds the pinned control-plane binaries into a cache outside the repo and prints its path.
# Skips the build when the cache already holds every binary.
#   OXYGEN_CACHE (default ~/.cache/oxygen) — where binaries land
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
. "$here/versions.env"
cache=${OXYGEN_CACHE:-$HOME/.cache/oxygen}
out="$cache/controlplane/k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}"
bins=(kube-apiserver kube-controller-manager etcd)

have_all=1
for b in "${bins[@]}"; do [ -x "$out/$b" ] || have_all=0; done
if [ "$have_all" = 1 ]; then echo "$out"; exit 0; fi

mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# The Go build cache and module cache are reused across builds (and across repo clones).
start=$(date +%s)

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ver_pkg=k8s.io/component-base/version
ldflags="-s -w -X ${ver_pkg}.gitVersion=${KUBERNETES_VERSION} -X ${ver_pkg}.gitMajor=1 -X ${ver_pkg}.gitMinor=${minor}"
ldflags="$ldflags -X ${ver_pkg}.gitTreeState=clean -X ${ver_pkg}.buildDate=1970-01-01T00:00:00Z"
# client-go carries its own copy of the version variables.
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

for b in kube-apiserver kube-controller-manager; do
  if [ ! -x "$out/$b" ]; then
    echo "building $b ${KUBERNETES_VERSION}..." >&2
    (cd "$here/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b")
    mv "$out/$b.tmp" "$out/$b"
  fi
done
if [ ! -x "$out/etcd" ]; then
  echo "building etcd ${ETCD_VERSION}..." >&2
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$out/etcd.tmp" "$out/etcd"
fi
echo "built in $(( $(date +%s) - start ))s: $(du -sh "$out" | cut -f1) in $out" >&2
echo "$out"
