#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    agent_cli_proxy_core::fuzzing::json_array::json_array_scan(data);
});
