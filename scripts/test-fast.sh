#!/usr/bin/env bash
# The fast tier: the tests that need no outside service (no etcd, dnsmasq,
# root, npm, Python, Prometheus, Envoy or browser), so they run on a machine
# with only a Rust toolchain and nothing installed by scripts/setup-*.sh. Every
# crate's unit tests, then the integration tests (tests/it) that talk only to
# servers they start themselves on loopback. The whole suite, which CI runs,
# stays scripts/test.sh.
#
# What is left out, by name (cargo test's --skip matches substrings):
#   classify::tests::transport_errors_by_their_types   dnsmasq (a real DNS server)
#   probe_cost::                                       dnsmasq and TLS fronts
#   discovery::                                        dnsmasq (DNS discovery, pinned probes)
#   xds_push::envoy_gets_the_address_the_probe_connected_to_through_dns_server   dnsmasq
#   cluster_daemons:: cluster_etcd:: cluster_more::    etcd (and root, for the network partition)
#   cluster_versions::                                 etcd and the previous release (scripts/build-previous.sh)
#   cluster_doubt::                                    etcd and root (a replica in a network namespace)
#   self_doubt::                                       root (a daemon in a network namespace)
#   interop:: interop_matrix:: catalog:: checks::      the Python and TypeScript SDKs (.venv, npm)
#   conformance::                                      the MCP conformance suite and its Node.js 22 (npm)
#   alerts:: metrics_prometheus::                      prometheus and promtool
#   security_validation::                              grpcurl from .venv
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
step() { printf '\n==> %s\n' "$*"; }

step "unit tests of every crate (lib and bins)"
cargo test --workspace --lib --bins -- --skip classify::tests::transport_errors_by_their_types

step "integration tests that need nothing outside (tests/it, loopback only)"
# Four at a time on two cores: these tests mostly wait on loopback servers and
# probe intervals, and assert order and conditions, never timings.
cargo test --test it -- \
  --skip probe_cost:: --skip discovery:: \
  --skip xds_push::envoy_gets_the_address_the_probe_connected_to_through_dns_server \
  --skip cluster_daemons:: --skip cluster_etcd:: --skip cluster_more:: --skip cluster_versions:: \
  --skip cluster_doubt:: --skip self_doubt:: \
  --skip interop:: --skip interop_matrix:: --skip catalog:: --skip checks:: --skip conformance:: \
  --skip alerts:: --skip metrics_prometheus:: \
  --skip security_validation:: \
  --test-threads 4
