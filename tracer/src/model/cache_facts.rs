//! What a live `tracer cache` run learns from outside its event stream, read from the
//! engine's memory: its cache size (the `cache entries` counter) and its goroutines' first
//! user functions (the timeline's track names). The live run turns each reading into a
//! [`CacheFact`] and applies the fact; a recording keeps the facts between the ring records
//! where they were applied, so that a replay draws the same timeline without the memory.
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum CacheFact {
    /// The engine's `cache.Size()` (the element counts of the maps it sums), read at
    /// `at_ns` (CLOCK_MONOTONIC).
    CacheEntries { at_ns: u64, entries: u64 },
    /// Goroutines' first user functions (goroutine id, function), as read.
    GoroutineFunctions { functions: Vec<(u64, String)> },
    /// Goroutines (process, goroutine id) found gone in the engine's goroutine table at
    /// `at_ns` (`--light`, which probes no exit): their open calls are over.
    GoroutinesGone {
        at_ns: u64,
        goroutines: Vec<(u32, u64)>,
    },
    /// The lost-event count rose to `total` (`recording::LostFact`, the same JSON): replay
    /// ends what was idle since, as the live run did.
    Lost { total: u64, at_ns: u64 },
}

impl CacheFact {
    /// A recorded fact; what is wrong with it, in words (a kind this tracer does not know
    /// is said to be from a newer tracer, never skipped).
    pub fn from_json(json: &[u8]) -> Result<CacheFact, String> {
        serde_json::from_slice(json).map_err(|e| {
            format!("a live fact this tracer cannot read (recorded by a newer tracer?): {e}")
        })
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a fact is plain data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_read_back_and_unknown_kinds_are_refused() {
        for fact in [
            CacheFact::CacheEntries {
                at_ns: 5,
                entries: 12,
            },
            CacheFact::GoroutineFunctions {
                functions: vec![(7, "main.main".into()), (9, "pkg.(*T).serve".into())],
            },
            CacheFact::GoroutinesGone {
                at_ns: 9,
                goroutines: vec![(100, 7), (100, 12)],
            },
        ] {
            assert_eq!(CacheFact::from_json(&fact.to_json()), Ok(fact));
        }
        let err = CacheFact::from_json(br#"{"fact":"later","x":1}"#).unwrap_err();
        assert!(err.contains("newer tracer"), "{err}");
    }

    #[test]
    fn a_lost_event_fact_as_the_live_run_writes_it_is_read_as_one() {
        let written = crate::recording::LostFact {
            total: 42,
            at_ns: 7,
        }
        .to_json();
        assert_eq!(
            CacheFact::from_json(&written),
            Ok(CacheFact::Lost {
                total: 42,
                at_ns: 7
            })
        );
    }
}
