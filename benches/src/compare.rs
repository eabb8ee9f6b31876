//! The cross-broker report `bench-compare` prints: criterion's saved results read back
//! ([`results`]), arranged into one table ([`table`]), and dated and placed on a machine
//! ([`about`]).

pub mod about;
pub mod results;
pub mod table;
#[cfg(test)]
mod testing;
