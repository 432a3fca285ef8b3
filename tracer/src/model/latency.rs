//! A bounded-memory latency histogram: log2 buckets split into 16 linear
//! sub-buckets, so percentiles are within ~6% whatever the number of samples.
const SUB_BUCKETS: u64 = 16;
const BUCKETS: usize = 64 * SUB_BUCKETS as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    max: u64,
    /// Events counted without a value (e.g. calls that never returned).
    unknown: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            max: 0,
            unknown: 0,
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < SUB_BUCKETS {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as u64; // v in [2^exp, 2^(exp+1))
    let sub = (v >> (exp - 4)) & (SUB_BUCKETS - 1);
    ((exp - 3) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls in `bucket` (so percentiles never under-report).
fn bucket_high(bucket: usize) -> u64 {
    let b = bucket as u64;
    if b < SUB_BUCKETS {
        return b;
    }
    let exp = b / SUB_BUCKETS + 3;
    let sub = b % SUB_BUCKETS;
    let low = (1u64 << exp) | (sub << (exp - 4));
    // The top bucket ends at u64::MAX; saturate rather than wrap.
    low.saturating_add((1u64 << (exp - 4)) - 1)
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket_of(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn record_unknown(&mut self) {
        self.unknown += 1;
    }

    /// Recorded values plus events without one.
    pub fn count_all(&self) -> u64 {
        self.total + self.unknown
    }

    /// The value at quantile `q` (0..=1), or None when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_high(bucket).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_monotonically() {
        let mut last = 0;
        for v in [
            0u64,
            1,
            15,
            16,
            17,
            31,
            32,
            1000,
            123_456,
            1 << 40,
            u64::MAX,
        ] {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order at {v}");
            assert!(bucket_high(b) >= v, "high({b}) < {v}");
            last = b;
        }
    }

    #[test]
    fn quantiles_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 100);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 500_000.0 - 1.0).abs() < 0.07, "p50 {p50}");
        assert!((p99 / 990_000.0 - 1.0).abs() < 0.07, "p99 {p99}");
        assert_eq!(h.quantile(1.0), Some(1_000_000));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }
}
