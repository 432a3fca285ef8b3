//! Small formatting helpers shared by every human-readable output.

/// A duration in the unit that keeps 3 significant digits readable.
pub fn duration(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns}ns"),
        1_000..=999_999 => format!("{:.2}us", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.2}ms", ns as f64 / 1e6),
        _ => format!("{:.3}s", ns as f64 / 1e9),
    }
}

/// A register value: small ones in decimal (counts, lengths, flags), others in hex
/// (pointers), which is how a reader recognises them.
pub fn register(v: u64) -> String {
    if v < 1 << 32 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_registers() {
        assert_eq!(duration(999), "999ns");
        assert_eq!(duration(1_500), "1.50us");
        assert_eq!(duration(2_000_000), "2.00ms");
        assert_eq!(duration(3_000_000_000), "3.000s");
        assert_eq!(register(42), "42");
        assert_eq!(register(0xc000012345), "0xc000012345");
        assert_eq!(register(2_000_001), "2000001");
    }
}
