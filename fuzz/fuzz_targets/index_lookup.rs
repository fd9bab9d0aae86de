#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vltava_fuzz::index_lookup(data));
