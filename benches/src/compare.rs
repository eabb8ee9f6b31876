//! The cross-broker report `bench-compare` prints: criterion's saved results read back
//! ([`results`]), arranged into one table ([`table`]), dated and placed on a machine
//! ([`about`]), and drawn ([`chart`]).

pub mod about;
pub mod chart;
pub mod results;
pub mod table;
#[cfg(test)]
mod testing;
