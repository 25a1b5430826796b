//! The serving phase's fixed points shared by both shells (`control.md` §1 step 8, §9): the
//! bind address, the bind failure, `server.running`, `shutdown.signal` and the end of the
//! shutdown. The drain between them is the core's [`agent_cli_proxy_core::shutdown::Drain`].

use std::process::ExitCode;

use agent_cli_proxy_core::exchange::Level;
use agent_cli_proxy_core::shutdown::Signal;
use agent_cli_proxy_core::time::Instant;
use serde_json::json;

use super::Daemon;

impl Daemon {
    /// `PROXY_HOST` without IPv6 brackets, and `PROXY_PORT`: what the listener binds.
    pub fn bind_address(&self) -> (String, u16) {
        let host = self
            .config
            .proxy_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        (host, self.config.proxy_port)
    }

    /// The listener could not bind: logs `startup.port_in_use`, closes storage, exit 1.
    pub fn bind_failed(&self, err: &std::io::Error) -> ExitCode {
        let host = &self.config.proxy_host;
        let port = self.config.proxy_port;
        self.logger.event(
            Level::Error,
            "startup.port_in_use",
            &format!("cannot bind {host}:{port}: {err}"),
            vec![
                ("host", json!(host)),
                ("port", json!(port)),
                (
                    "hint",
                    json!(
                        "another agent-cli-proxy may be running, or set PROXY_PORT to a different port"
                    ),
                ),
            ],
        );
        self.shutdown_storage();
        self.logger.flush();
        ExitCode::from(1)
    }

    /// The runtime could not start: logs `startup.error`, closes storage, exit 1.
    pub fn runtime_failed(&self, err: &std::io::Error) -> ExitCode {
        self.logger.event(
            Level::Error,
            "startup.error",
            &format!("cannot start the runtime: {err}"),
            vec![],
        );
        self.shutdown_storage();
        self.logger.flush();
        ExitCode::from(1)
    }

    /// Logs `server.running` once the listener is bound and the loops started.
    pub fn log_running(&self) {
        let host = &self.config.proxy_host;
        let port = self.config.proxy_port;
        self.logger.event(
            Level::Info,
            "server.running",
            "server running",
            vec![
                ("host", json!(host)),
                ("port", json!(port)),
                ("url", json!(format!("http://{host}:{port}"))),
            ],
        );
    }

    /// Step 1 of §9.2: logs `shutdown.signal`; returns when the shutdown started.
    pub fn log_shutdown_started(&self, signal: Signal) -> Instant {
        self.logger.event(
            Level::Info,
            "shutdown.signal",
            "shutdown started",
            vec![("signal", json!(signal.name()))],
        );
        self.now()
    }

    /// The end of §9.2 once storage is closed: logs `shutdown.complete`, flushes the log
    /// and gives the exit code of §9.3.
    pub fn shutdown_complete(&self, signal: Signal, started: Instant) -> ExitCode {
        self.logger.event(
            Level::Info,
            "shutdown.complete",
            "shutdown complete",
            vec![
                ("exit_code", json!(signal.exit_code())),
                ("total_ms", json!(self.now().millis_since(started))),
            ],
        );
        self.logger.flush();
        ExitCode::from(signal.exit_code())
    }

    /// A panic caught at a task boundary (`control.md` §9.3): counted in
    /// `agent_cli_proxy_panics_total` and logged as `task.panic`.
    pub fn report_panic(&self, request_id: &str, panic: &(dyn std::any::Any + Send)) {
        let text = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        self.count_panic();
        self.logger.event(
            Level::Error,
            "task.panic",
            "request task panicked",
            vec![("request_id", json!(request_id)), ("panic", json!(text))],
        );
    }
}
