//! The pure core: backend verdicts and the group phase as plain functions over
//! values. Nothing here does I/O, reads a clock or spawns a task.

pub mod outcome;
pub mod phase;
pub mod verdict;

#[cfg(test)]
mod tests;
