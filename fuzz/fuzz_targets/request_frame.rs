#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vltava_fuzz::request_frame(data));
