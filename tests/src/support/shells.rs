//! The two daemons under test and the macro that runs one case against both.
//!
//! ```ignore
//! use agent_cli_proxy_tests::both_shells;
//! use agent_cli_proxy_tests::support::shells::Shell;
//!
//! both_shells! {
//!     fn health_answers(shell: Shell) {
//!         let proxy = ProxyProcess::start(shell, &[]);
//!         // …
//!     }
//! }
//! // expands to the tests `health_answers_tokio` and `health_answers_smol`
//!
//! both_shells! {
//!     async fn streams_relay(shell: Shell) {
//!         // runs on a fresh current-thread tokio runtime per shell
//!     }
//! }
//! ```
//!
//! Every expanded test first calls
//! [`run_child_if_requested`](crate::support::proc::run_child_if_requested), so a test
//! binary re-executed as a proxy child never runs a case by mistake (see [`crate::support::proc`]).

use std::fmt;

/// One of the two runtime shells of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shell {
    /// `agent-cli-proxy` on tokio and hyper.
    Tokio,
    /// `agent-cli-proxy-smol` on smol and the core's HTTP/1.1 codec.
    Smol,
}

impl Shell {
    /// Both shells, tokio first.
    pub const ALL: [Shell; 2] = [Shell::Tokio, Shell::Smol];

    /// The value of `ACP_TEST_CHILD` and the suffix of expanded test names.
    pub fn as_str(self) -> &'static str {
        match self {
            Shell::Tokio => "tokio",
            Shell::Smol => "smol",
        }
    }

    /// Parses `tokio` or `smol` (trimmed, case-insensitive).
    pub fn parse(value: &str) -> Option<Shell> {
        match value.trim().to_ascii_lowercase().as_str() {
            "tokio" => Some(Shell::Tokio),
            "smol" => Some(Shell::Smol),
            _ => None,
        }
    }
}

impl fmt::Display for Shell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expands one case into a `<name>_tokio` and a `<name>_smol` test.
///
/// Forms: `fn name(shell: Shell) { … }` for a blocking case and
/// `async fn name(shell: Shell) { … }` for a case that runs on a current-thread tokio
/// runtime (built per test, with IO and time enabled). Attributes before `fn` (such as
/// `#[ignore]`) are copied to both tests. The type must be spelled `Shell` and be in scope.
#[macro_export]
macro_rules! both_shells {
    ($(#[$meta:meta])* fn $name:ident($shell:ident : Shell) $body:block $($rest:tt)*) => {
        // The case body is test code: unwrap and expect are how tests fail.
        #[allow(clippy::unwrap_used, clippy::expect_used)]
        fn $name($shell: Shell) $body
        $crate::__both_shells_expand!($(#[$meta])* $name, sync);
        $crate::both_shells!($($rest)*);
    };
    ($(#[$meta:meta])* async fn $name:ident($shell:ident : Shell) $body:block $($rest:tt)*) => {
        #[allow(clippy::unwrap_used, clippy::expect_used)]
        async fn $name($shell: Shell) $body
        $crate::__both_shells_expand!($(#[$meta])* $name, async);
        $crate::both_shells!($($rest)*);
    };
    () => {};
}

/// Implementation detail of [`both_shells!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __both_shells_expand {
    ($(#[$meta:meta])* $name:ident, $mode:ident) => {
        $crate::support::shells::__paste! {
            #[test]
            $(#[$meta])*
            fn [<$name _tokio>]() {
                $crate::__both_shells_run!($mode, $name, $crate::support::shells::Shell::Tokio);
            }
            #[test]
            $(#[$meta])*
            fn [<$name _smol>]() {
                $crate::__both_shells_run!($mode, $name, $crate::support::shells::Shell::Smol);
            }
        }
    };
}

/// Implementation detail of [`both_shells!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __both_shells_run {
    (sync, $name:ident, $shell:expr) => {{
        $crate::support::proc::run_child_if_requested();
        $name($shell)
    }};
    (async, $name:ident, $shell:expr) => {{
        $crate::support::proc::run_child_if_requested();
        $crate::support::shells::block_on($name($shell))
    }};
}

#[doc(hidden)]
pub use paste::paste as __paste;

/// Runs `future` to completion on a fresh current-thread tokio runtime with IO and time.
///
/// Panics when the runtime cannot be built, which fails the calling test.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(err) => panic!("cannot build a tokio runtime for the test: {err}"),
    }
}
