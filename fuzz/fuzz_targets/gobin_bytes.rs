#![no_main]
//! Any file as a Go binary: ELF, build info, pclntab, DWARF, then the queries on it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| tracer_fuzz::harness::gobin_bytes(data));
