#![no_main]
//! Real Go binaries with fuzzer bytes written into `.gopclntab`, `.go.buildinfo` or the
//! ELF header, so that mutations land in the tables rather than in 2 MB of code.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracer_fuzz::harness::gobin_patch(tracer_fuzz::bases(), data)
});
