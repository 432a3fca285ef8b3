#![no_main]
//! Ring-buffer records of any length and content, decoded as the event reader does.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::event(data));
