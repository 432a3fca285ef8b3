#![no_main]
//! Recordings of any content: header, blocks, items, and the ring records inside them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::recording(data));
