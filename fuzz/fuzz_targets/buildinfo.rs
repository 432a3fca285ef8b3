#![no_main]
//! A `.go.buildinfo` section on its own: Go version, module info, build settings.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::buildinfo(data));
