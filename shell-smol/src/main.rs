use std::process::ExitCode;

fn main() -> ExitCode {
    agent_cli_proxy_smol::main_with_args(std::env::args_os())
}
