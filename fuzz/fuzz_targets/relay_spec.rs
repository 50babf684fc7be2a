#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kham_fuzz_targets::relay_spec(data));
