#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| kham_fuzz_targets::data_channel(data));
