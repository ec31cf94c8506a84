//! High availability on etcd: API groups, membership and shared verdicts in
//! one etcd keyspace (`keys`), so every replica answers the same, each
//! backend is probed by exactly one live replica (`ownership`), and a dead
//! replica's backends move within one lease; an on-demand probe asked of any
//! replica is made by the owner (`probes`, `answers`), and real-traffic reports
//! sent to any replica are folded by the owner (`reports`), whose ejection is
//! shared with its verdict (`record`); a burst of one replica's failures is
//! put to the others, and a replica that doubts itself hands its backends
//! over (`indirect`). Absent `--etcd-endpoints`,
//! nothing here runs and the daemon is the single node it always was.

pub mod answers;
pub mod endpoints;
pub mod etcd;
pub mod etcd_api;
pub mod flags;
pub mod follow;
pub mod forward;
pub mod groups;
pub mod indirect;
pub mod keys;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod outbox;
pub mod ownership;
pub mod probes;
pub mod record;
pub mod reports;
pub mod shared;
pub mod status;
pub mod store;
pub mod verdicts;

pub use flags::{ClusterOptions, EtcdFlags};
