#![no_main]
//! The goroutine and semaphore-tree walkers over fuzzed target memory.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tracer_fuzz::harness::walker(tracer_fuzz::bases(), data)
});
