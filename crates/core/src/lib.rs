//! The pure core: backend verdicts, outlier ejection from real traffic, self-doubt and bursts of failing probes, the group phase, the domain snapshot every edge maps from, tool catalogs (hashes,
//! diffs, required tools), synthetic checks' judgements, spec validation and durations as plain functions
//! over values. Nothing here does I/O, reads a
//! clock or spawns a task, and the crate depends on no runtime (no tokio,
//! tonic or reqwest): the compiler keeps it that way.

pub mod burst;
pub mod catalog;
pub mod check;
pub mod discovery;
pub mod doubt;
pub mod errors;
pub mod outcome;
pub mod outlier;
pub mod phase;
pub mod snapshot;
pub mod spec;
pub mod ssrf;
pub mod verdict;

#[cfg(test)]
mod burst_tests;
#[cfg(test)]
mod catalog_tests;
#[cfg(test)]
mod check_tests;
#[cfg(test)]
mod doubt_tests;
#[cfg(test)]
mod outlier_tests;
#[cfg(test)]
mod tests;
