//! The integration tests, as one test crate: one binary links tonic,
//! reqwest and redb once instead of once per file (see ARCHITECTURE.md,
//! "Tests"). Run one file's tests with `cargo test --test it <module>::`.

mod common;
mod etcd_support;
mod lifecycle_bin;
mod netns_support;
mod probe_support;

mod alerts;
mod catalog;
mod checks;
mod cli_commands;
mod cluster_daemons;
mod cluster_discovery;
mod cluster_doubt;
mod cluster_etcd;
mod cluster_more;
mod cluster_versions;
mod conformance;
mod discovery;
mod docs;
mod drain;
mod edge_intervals;
mod group_api;
mod grpc_health;
mod history_ui;
mod interop;
mod interop_matrix;
mod lifecycle_changes;
mod lifecycle_config;
mod lifecycle_failures;
mod lifecycle_store;
mod logs;
mod metrics_prometheus;
mod metrics_scrape;
mod outlier;
mod phase_watch;
mod probe_auth;
mod probe_classify;
mod probe_cost;
mod probe_hostile;
mod probe_rate_limit;
mod probe_revision;
mod probe_tls;
mod security_auth;
mod security_validation;
mod self_doubt;
mod startup_race;
mod xds_push;
