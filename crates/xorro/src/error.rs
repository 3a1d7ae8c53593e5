//! Exit codes and the errors that carry them.
//!
//! Every failure reaches `main` as an [`anyhow::Error`]. An [`Exit`] somewhere in its chain
//! says which exit code the failure gets and may add a hint for the user; an error without one
//! exits with [`Code::Failed`]. `main` prints the chain on one line and the hint on the next.

use std::fmt;

/// The exit codes scripts can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The operation failed or found nothing.
    Failed = 1,
    /// The command line (or a config file, or an environment variable) is wrong.
    Usage = 2,
    /// No daemon answers at the API address.
    Unreachable = 3,
}

/// A failure with its exit code and an optional hint.
#[derive(Debug)]
pub struct Exit {
    /// The exit code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

impl Exit {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Exit {
            code: Code::Usage,
            message: message.into(),
            hint: None,
        }
        .into()
    }

    /// An operation that failed or found nothing (exit code 1).
    pub fn failed(message: impl Into<String>, hint: Option<String>) -> anyhow::Error {
        Exit {
            code: Code::Failed,
            message: message.into(),
            hint,
        }
        .into()
    }

    /// No daemon at `api` (exit code 3).
    pub fn unreachable(api: &str) -> anyhow::Error {
        Exit {
            code: Code::Unreachable,
            message: format!(
                "no xorro node answers at {api}: start one with `xorro node` (or `xorro testnet`)"
            ),
            hint: Some("or point --api (XORRO_API) at a running node".to_owned()),
        }
        .into()
    }
}

/// The exit code and hint of `err`: those of the outermost [`Exit`], whether it was added
/// as context or is a cause.
pub fn classify(err: &anyhow::Error) -> (Code, Option<&str>) {
    err.downcast_ref::<Exit>()
        .or_else(|| err.chain().find_map(|e| e.downcast_ref::<Exit>()))
        .map_or((Code::Failed, None), |x| (x.code, x.hint.as_deref()))
}

/// The error chain on one line: `outer: inner: innermost`, leaving out a cause whose text
/// the message before it already contains (many errors print their source themselves).
pub fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn the_chain_is_one_line_without_repeats() {
        let inner = std::io::Error::other("disk on fire");
        let err = anyhow::Error::new(inner)
            .context("cannot save: disk on fire")
            .context("shutdown failed");
        assert_eq!(one_line(&err), "shutdown failed: cannot save: disk on fire");
    }

    #[test]
    fn the_exit_code_comes_from_the_chain() {
        let err = Exit::usage("INFOHASH must be 40 hex digits, got 3 characters");
        assert_eq!(classify(&err).0, Code::Usage);
        let err: anyhow::Result<()> = Err(Exit::unreachable("127.0.0.1:1"));
        let err = err.context("status").unwrap_err();
        assert_eq!(classify(&err).0, Code::Unreachable);
        assert!(classify(&err).1.is_some());
        assert_eq!(classify(&anyhow::anyhow!("x")).0, Code::Failed);
        let hinted = anyhow::anyhow!("x").context(Exit {
            code: Code::Usage,
            message: String::new(),
            hint: Some("h".into()),
        });
        assert_eq!(classify(&hinted), (Code::Usage, Some("h")));
        assert_eq!(one_line(&hinted), "x");
    }
}
