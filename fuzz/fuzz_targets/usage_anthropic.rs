#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agent_cli_proxy_core::fuzzing::usage::usage_anthropic(data);
});
