//! Subprocess tests of every command (`reliability.md` CI-22).
//!
//! Scheme: this is a `harness = false` test. Run with `ACP_CLI_CHILD=1`, its `main` is the
//! CLI itself (`main_with` with [`TestShell`]); otherwise it runs the cases below, each of
//! which re-executes this binary as the CLI in a fresh temporary HOME with the XDG variables
//! pointed inside it and an otherwise empty environment. So every case runs the real command
//! path — argument parsing, env loading, files, SQLite, exit codes — as a separate process.
//!
//! The PostgreSQL cases (`pg_cases`) start a throw-away server each; the test build always
//! has the `postgres` feature (cli's dev-dependency on itself turns it on).
//!
//! `TestShell` stands in for the runtime: `serve` prints the environment it was given (keys
//! starting with `T_`, and `PROXY_PORT`), `probe` answers from `ACP_TEST_PROBE` (a status
//! code, or an error text) and `fetch` is the trait's default (no client).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

// The throw-away PostgreSQL server of the tests crate's harness, shared rather than copied.
#[path = "../../tests/src/support/pg.rs"]
mod pg;

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::var_os("ACP_CLI_CHILD").is_some() {
        return agent_cli_proxy_cli::main_with(std::env::args_os(), &support::TestShell);
    }
    support::run_cases(&[
        (
            "version_help_and_no_command",
            cases::version_help_and_no_command,
        ),
        (
            "usage_errors_exit_2_with_one_line",
            cases::usage_errors_exit_2_with_one_line,
        ),
        (
            "paths_reports_xdg_defaults",
            cases::paths_reports_xdg_defaults,
        ),
        (
            "serve_loads_env_file_with_process_precedence",
            cases::serve_loads_env_file_with_process_precedence,
        ),
        (
            "init_non_interactive_writes_private_env_and_db",
            cases::init_non_interactive_writes_private_env_and_db,
        ),
        (
            "init_refuses_overwrite_then_force_and_merge",
            cases::init_refuses_overwrite_then_force_and_merge,
        ),
        (
            "init_non_interactive_errors_name_the_variable",
            cases::init_non_interactive_errors_name_the_variable,
        ),
        (
            "init_interactive_through_a_pty",
            cases::init_interactive_through_a_pty,
        ),
        (
            "dashboard_hash_password_from_stdin",
            cases::dashboard_hash_password_from_stdin,
        ),
        (
            "init_direct_mode_needs_no_router",
            cases::init_direct_mode_needs_no_router,
        ),
        (
            "calls_without_usage_are_not_cost_pending",
            cases::calls_without_usage_are_not_cost_pending,
        ),
        (
            "init_interactive_without_tty_refuses_secret_prompt",
            cases::init_interactive_without_tty_refuses_secret_prompt,
        ),
        (
            "db_init_and_backup_holds_the_rows",
            cases::db_init_and_backup_holds_the_rows,
        ),
        ("db_backup_refusals", cases::db_backup_refusals),
        (
            "doctor_json_pass_and_fail",
            cases::doctor_json_pass_and_fail,
        ),
        (
            "doctor_text_and_upstream_5xx",
            cases::doctor_text_and_upstream_5xx,
        ),
        (
            "service_install_writes_a_valid_unit",
            cases::service_install_writes_a_valid_unit,
        ),
        (
            "service_control_runs_systemctl_and_journalctl",
            cases::service_control_runs_systemctl_and_journalctl,
        ),
        ("providers_path_init_show", cases::providers_path_init_show),
        (
            "backfill_costs_recosts_pending_rows",
            cases::backfill_costs_recosts_pending_rows,
        ),
        (
            "usage_reports_match_computed_sums",
            cases::usage_reports_match_computed_sums,
        ),
        (
            "usage_empty_and_local_time_zone",
            cases::usage_empty_and_local_time_zone,
        ),
        (
            "usage_table_keeps_names_whole",
            cases::usage_table_keeps_names_whole,
        ),
        (
            "closed_stdout_is_not_a_panic",
            cases::closed_stdout_is_not_a_panic,
        ),
        ("db_copy_usage_errors", pg_cases::db_copy_usage_errors),
        (
            "db_copy_takes_the_originals_databases",
            pg_cases::db_copy_takes_the_originals_databases,
        ),
        (
            "db_copy_of_our_database_and_usage_on_both_backends",
            pg_cases::db_copy_of_our_database_and_usage_on_both_backends,
        ),
        (
            "db_copy_applies_the_leftover_spool_and_respects_the_lock",
            pg_cases::db_copy_applies_the_leftover_spool_and_respects_the_lock,
        ),
        (
            "db_init_doctor_and_refusals_on_postgres",
            pg_cases::db_init_doctor_and_refusals_on_postgres,
        ),
    ])
}

mod cases;
mod pg_cases;
