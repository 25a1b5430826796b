//! What configuration validation reports: issues (fatal, collected) and warnings. Their own
//! module because both the environment's validation (`config`) and the provider documents'
//! (`provider::config`) produce them, and `config` holds the providers: with these inside
//! `config`, the two modules imported each other.

use std::fmt;

/// One validation issue: a variable or document path and what is wrong with it. Messages
/// never contain a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// `PROXY_PORT`, `CLIENT_NAME_MAPPING[2]`, `providers[0].upstreamBaseUrl`, …
    pub path: String,
    /// `must be an integer from 1 to 65535`, …
    pub message: String,
}

impl ConfigIssue {
    /// An issue at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.message)
    }
}

/// A configuration warning (`config.warning` with `path` and `message`), logged only when
/// there are no issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The variable or document path.
    pub path: String,
    /// What the operator should know.
    pub message: String,
}

impl ConfigWarning {
    /// A warning at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigWarning {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.message)
    }
}
