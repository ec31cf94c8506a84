#!/usr/bin/env bash
# Installs the system tools the tests run (idempotent; quick when present):
#   - prometheus and promtool (Debian's `prometheus`): tests/it/metrics_prometheus.rs
#     runs a real Prometheus against the daemon and lints the exposition.
# The package's system service is never started (policy-rc.d refuses it, and
# the tests run their own server on a free loopback port).
set -euo pipefail
say() { printf '[setup-tools] %s\n' "$*"; }

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)

if [[ ${#missing[@]} -eq 0 ]]; then
  say "up to date (prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}'))"
  exit 0
fi

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
say "installing ${missing[*]} (apt)"
# Keep the package's service from starting: we run our own servers.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  made_policy=1
fi
trap '[[ $made_policy -eq 1 ]] && "${sudo[@]}" rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v prometheus >/dev/null && command -v promtool >/dev/null || { say "error: prometheus/promtool still missing"; exit 1; }
say "installed prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}')"
