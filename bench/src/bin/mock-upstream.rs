//! `mock-upstream [--addr HOST:PORT] [--threads N]`: the benchmark's canned upstream.
//!
//! Defaults: `127.0.0.1:18081`, 2 worker threads (one per core of the benchmark machine).
//! Prints `mock-upstream listening on <addr>` once the socket is bound, then serves until
//! killed. See the library docs for what it answers.

use std::net::SocketAddr;
use std::process::ExitCode;

use agent_cli_proxy_bench::serve;

const USAGE: &str = "usage: mock-upstream [--addr HOST:PORT] [--threads N]";

fn main() -> ExitCode {
    let (addr, threads) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(msg) => {
            eprintln!("mock-upstream: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("mock-upstream: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("mock-upstream listening on {}", listener.local_addr()?);
        serve(listener).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-upstream: {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(SocketAddr, usize), String> {
    let mut addr = SocketAddr::from(([127, 0, 0, 1], 18081));
    let mut threads = 2;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => {
                addr = value
                    .parse()
                    .map_err(|_| format!("--addr {value}: not HOST:PORT"))?;
            }
            "--threads" => {
                threads = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("--threads {value}: not a positive integer"))?;
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok((addr, threads))
}
