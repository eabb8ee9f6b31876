//! Showing an error together with its causes, on one line.

use std::{error::Error, fmt};

/// Displays an error followed by each of its [`source`](Error::source)s, separated by `": "`,
/// for logs and for the command line. It adds nothing the errors do not say themselves, so
/// it is as free of secrets as they are.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn report_lists_every_cause_in_order() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(Report(&error).to_string(), "outer: inner");
    }
}
