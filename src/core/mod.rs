//! The pure core: backend verdicts, the group phase and tool catalogs
//! (hashes, diffs, required tools) as plain functions over values. Nothing
//! here does I/O, reads a clock or spawns a task.

pub mod catalog;
pub mod outcome;
pub mod phase;
pub mod verdict;

#[cfg(test)]
mod catalog_tests;
#[cfg(test)]
mod tests;
