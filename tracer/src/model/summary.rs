//! Per-function totals for the exit summary of `tracer funcs`.
use super::{
    calls::{CallRecord, CallStatus},
    latency::Histogram,
};

#[derive(Clone, Default)]
pub struct FuncTotals {
    pub calls: u64,
    pub returned: u64,
    pub unwound: u64,
    pub unfinished: u64,
    pub entry_only: u64,
    pub no_entry: u64,
    pub durations: Histogram,
}

/// Totals indexed by probe id.
pub struct CallSummary {
    pub per_func: Vec<FuncTotals>,
}

impl CallSummary {
    pub fn new(functions: usize) -> CallSummary {
        CallSummary {
            per_func: vec![FuncTotals::default(); functions],
        }
    }

    pub fn add(&mut self, rec: &CallRecord) {
        let Some(t) = self.per_func.get_mut(rec.probe_id as usize) else {
            return;
        };
        t.calls += 1;
        match rec.status {
            CallStatus::Returned => t.returned += 1,
            CallStatus::Unwound => t.unwound += 1,
            CallStatus::Unfinished => t.unfinished += 1,
            CallStatus::EntryOnly => t.entry_only += 1,
            CallStatus::NoEntry => t.no_entry += 1,
        }
        if let Some(d) = rec.duration_ns() {
            t.durations.record(d);
        }
    }

    pub fn total(&self, field: impl Fn(&FuncTotals) -> u64) -> u64 {
        self.per_func.iter().map(field).sum()
    }
}
