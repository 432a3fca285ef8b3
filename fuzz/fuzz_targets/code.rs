#![no_main]
//! Machine code of one function: prologue and RET search, probe sites, mutex sites.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::code(data));
