use std::process::ExitCode;

// mimalloc (non-secure build): the request path allocates and frees many small buffers,
// and glibc's malloc and free were a fifth of its instructions (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    agent_cli_proxy::main_with_limits(std::env::args_os(), Default::default())
}
