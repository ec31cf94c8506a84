#!/usr/bin/env bash
# System packages the tests need, from Debian's archive: dnsmasq (the binary
# only, package dnsmasq-base: no system service is installed or started), the
# real DNS server the DNS tests and benchmarks run on loopback; and iproute2
# (`ip netns`, veth), with which tests/it/cluster_more.rs cuts one replica off in
# a network namespace of its own; and faketime (libfaketime), with which the
# fault-schedule harness jumps one replica's wall clock. Idempotent and quick
# when already installed.
set -euo pipefail
if { command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]; } && { command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ]; } \
  && command -v faketime >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends dnsmasq-base iproute2 faketime
