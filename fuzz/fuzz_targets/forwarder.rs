#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kham_fuzz_targets::forwarder(data));
