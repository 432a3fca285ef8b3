#![no_main]
//! DWARF sections searched for the runtime's `g` struct offsets.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::dwarf(data));
