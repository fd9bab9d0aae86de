#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vltava_fuzz::record_batch(data));
