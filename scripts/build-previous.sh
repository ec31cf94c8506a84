#!/usr/bin/env bash
# Builds the mcp-healthd of an earlier release (PREVIOUS_REV, default 78d0163:
# stop 25, the last binary before the versioned etcd verdict record) into
# target/previous/debug/mcp-healthd, for tests/it/cluster_versions.rs (an old
# and a new replica side by side). Its registry dependencies are hard-linked
# from target/debug (built first by `cargo build`), so only the old crate
# itself compiles; its own artifacts never share a file with ours.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev=${PREVIOUS_REV:-78d0163}
out=target/previous
src=$out/src
if [ -x "$out/debug/mcp-healthd" ] && [ "$(cat "$out/rev" 2>/dev/null)" = "$rev" ]; then
  echo "[build-previous] $out/debug/mcp-healthd is $rev already"
  exit 0
fi
git cat-file -e "$rev^{commit}" || { echo "[build-previous] commit $rev is not in this clone (a shallow clone?): fetch it first" >&2; exit 1; }
rm -rf "$src" "$out/debug"
git worktree prune
git worktree add --force --detach "$src" "$rev" >/dev/null
mkdir -p "$out"
if [ -d target/debug/deps ]; then
  # Registry crates only: every artifact of our own packages is left out.
  mkdir -p "$out/debug"
  for d in deps build .fingerprint; do
    [ -d "target/debug/$d" ] || continue
    mkdir -p "$out/debug/$d"
    find "target/debug/$d" -mindepth 1 -maxdepth 1 \
      ! -name '*mcp_health*' ! -name '*mcp-health*' ! -name '*fault_schedule*' ! -name 'fault-schedule*' \
      ! -name '*interop_rmcp*' ! -name 'interop-rmcp*' ! -name '*mcp_fixture*' ! -name 'mcp-fixture*' \
      ! -name 'it-*' ! -name 'otel_export-*' ! -name 'scale-*' ! -name 'cluster-*' \
      -exec cp -al {} "$out/debug/$d/" \;
  done
fi
# The old manifest predates the line-tables-only debug info of dependencies
# (Cargo.toml): the same setting here keeps the hard-linked builds fresh.
(cd "$src" && CARGO_TARGET_DIR="$PWD/../" cargo build --bin mcp-healthd \
  --config 'profile.dev.package."*".debug="line-tables-only"')
echo "$rev" > "$out/rev"
echo "[build-previous] $out/debug/mcp-healthd built from $rev"
