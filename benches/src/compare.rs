//! The cross-broker report `bench-compare` prints: criterion's saved results read back
//! ([`results`]).

pub mod results;
#[cfg(test)]
mod testing;
