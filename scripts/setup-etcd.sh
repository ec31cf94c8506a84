#!/usr/bin/env bash
# Installs etcd (Debian's etcd-server package, 3.4) for the cluster tests,
# which start their own etcd nodes on loopback, and etcdctl (etcd-client),
# with which tests/it/cluster_more.rs turns on etcd's authentication through an
# independent client. Quick when already installed.
# The package's system service is not used (and not started here).
set -euo pipefail
if command -v etcd >/dev/null 2>&1 && command -v etcdctl >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d 101: the package's post-install must not start a system etcd.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
etcd --version | head -1
ETCDCTL_API=3 etcdctl version | head -1
