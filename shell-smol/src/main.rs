use std::process::ExitCode;

fn main() -> ExitCode {
    agent_cli_proxy_smol::main_with_limits(std::env::args_os(), Default::default())
}
