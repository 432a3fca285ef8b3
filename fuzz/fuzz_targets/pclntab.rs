#![no_main]
//! A `.gopclntab` on its own (both formats): functions, line tables, inline trees.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::pclntab(data));
