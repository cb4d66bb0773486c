//! YAML bytes → documents → schema check → typed objects → semantic checks. Must never panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    serin::api::manifest::fuzz_check(data);
});
