#!/usr/bin/env bash
# Build (or find in the cache) etcd and etcdctl at the pinned version; see scripts/build_k8s.py.
set -euo pipefail
exec python3 "$(dirname "$0")/build_k8s.py" --only etcd,etcdctl "$@"
