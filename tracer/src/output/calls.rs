//! Output of `tracer funcs`: one line or JSON object per call, and the summary.
use std::io::{self, Write};

use serde::Serialize;
use tracer_common::GO_INT_REGS;

use super::format::{duration, register};
use crate::model::{calls::CallRecord, summary::CallSummary};

#[derive(Serialize)]
struct FuncCallJson<'a> {
    kind: &'static str,
    func: &'a str,
    pid: u32,
    goid: Option<u64>,
    tid: u32,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    duration_ns: Option<u64>,
    args: Option<[u64; GO_INT_REGS]>,
    ret: Option<[u64; GO_INT_REGS]>,
    status: &'static str,
}

pub fn write_json(out: &mut dyn Write, rec: &CallRecord, func: &str) -> io::Result<()> {
    let json = FuncCallJson {
        kind: "func_call",
        func,
        pid: rec.tgid,
        goid: rec.goid,
        tid: rec.tid,
        start_ns: rec.start_ns,
        end_ns: rec.end_ns,
        duration_ns: rec.duration_ns(),
        args: rec.args,
        ret: rec.ret,
        status: rec.status.as_str(),
    };
    serde_json::to_writer(&mut *out, &json)?;
    out.write_all(b"\n")
}

fn regs(values: &[u64]) -> String {
    values.iter().map(|v| register(*v)).collect::<Vec<_>>().join(", ")
}

/// `g42 main.add9(1, 2, ...) = (45, 0) 1.20us` — results show RAX and RBX, the
/// registers that hold one- and two-word results.
pub fn write_human(out: &mut dyn Write, rec: &CallRecord, func: &str) -> io::Result<()> {
    let goid = rec.goid.map_or("g?".to_string(), |g| format!("g{g}"));
    let args = rec.args.map_or("(?)".to_string(), |a| format!("({})", regs(&a)));
    let tail = match (rec.ret, rec.duration_ns()) {
        (Some(r), Some(d)) => format!(" = ({}) {}", regs(&r[..2]), duration(d)),
        (Some(r), None) => format!(" = ({}) [{}]", regs(&r[..2]), rec.status.as_str()),
        (None, _) => format!(" [{}]", rec.status.as_str()),
    };
    writeln!(out, "{goid:>6} {func}{args}{tail}")
}

pub struct SummaryContext<'a> {
    pub names: &'a [String],
    pub lost_events: u64,
    pub unreadable: u64,
    pub malformed: u64,
}

pub fn write_summary_human(out: &mut dyn Write, s: &CallSummary, ctx: &SummaryContext) -> io::Result<()> {
    writeln!(out, "--- summary ---")?;
    writeln!(
        out,
        "{:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9}  function",
        "calls", "returned", "unwound", "unfinished", "no_entry", "p50", "p99"
    )?;
    for (id, t) in s.per_func.iter().enumerate() {
        if t.calls == 0 {
            continue;
        }
        let q = |p| t.durations.quantile(p).map_or("-".into(), duration);
        writeln!(
            out,
            "{:>9} {:>9} {:>8} {:>10} {:>9} {:>9} {:>9}  {}",
            t.calls,
            t.returned,
            t.unwound,
            t.unfinished,
            t.no_entry,
            q(0.5),
            q(0.99),
            ctx.names[id]
        )?;
    }
    writeln!(
        out,
        "calls: {}  unwound: {}  lost events: {}  unreadable goroutine: {}",
        s.total(|t| t.calls),
        s.total(|t| t.unwound),
        ctx.lost_events,
        ctx.unreadable + ctx.malformed,
    )?;
    if ctx.lost_events > 0 {
        writeln!(
            out,
            "warning: {} events were lost because the ring buffer was full; calls around them may be reported as unwound or no_entry (hint: --ring-mb)",
            ctx.lost_events
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct FuncSummaryJson<'a> {
    func: &'a str,
    calls: u64,
    returned: u64,
    unwound: u64,
    unfinished: u64,
    entry_only: u64,
    no_entry: u64,
    p50_ns: Option<u64>,
    p99_ns: Option<u64>,
}

pub fn write_summary_json(out: &mut dyn Write, s: &CallSummary, ctx: &SummaryContext) -> io::Result<()> {
    let functions: Vec<_> = s
        .per_func
        .iter()
        .enumerate()
        .filter(|(_, t)| t.calls > 0)
        .map(|(id, t)| FuncSummaryJson {
            func: &ctx.names[id],
            calls: t.calls,
            returned: t.returned,
            unwound: t.unwound,
            unfinished: t.unfinished,
            entry_only: t.entry_only,
            no_entry: t.no_entry,
            p50_ns: t.durations.quantile(0.5),
            p99_ns: t.durations.quantile(0.99),
        })
        .collect();
    let json = serde_json::json!({
        "kind": "summary",
        "calls": s.total(|t| t.calls),
        "unwound": s.total(|t| t.unwound),
        "lost_events": ctx.lost_events,
        "unreadable_events": ctx.unreadable + ctx.malformed,
        "functions": functions,
    });
    serde_json::to_writer(&mut *out, &json)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::calls::CallStatus;

    fn record(status: CallStatus) -> CallRecord {
        CallRecord {
            probe_id: 0,
            tgid: 1,
            goid: Some(7),
            tid: 2,
            start_ns: Some(100),
            end_ns: (status == CallStatus::Returned).then_some(350),
            args: Some([1, 2, 3, 4, 5, 6, 7, 8, 9]),
            ret: (status == CallStatus::Returned).then_some([45, 0, 0, 0, 0, 0, 0, 0, 0]),
            status,
        }
    }

    #[test]
    fn json_shape() {
        let mut buf = Vec::new();
        write_json(&mut buf, &record(CallStatus::Returned), "main.add9").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["kind"], "func_call");
        assert_eq!(v["func"], "main.add9");
        assert_eq!(v["goid"], 7);
        assert_eq!(v["args"].as_array().unwrap().len(), 9);
        assert_eq!(v["ret"][0], 45);
        assert_eq!(v["duration_ns"], 250);
        assert_eq!(v["status"], "returned");

        buf.clear();
        write_json(&mut buf, &record(CallStatus::Unwound), "main.f").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v["ret"].is_null() && v["duration_ns"].is_null());
        assert_eq!(v["status"], "unwound");
    }

    #[test]
    fn human_line() {
        let mut buf = Vec::new();
        write_human(&mut buf, &record(CallStatus::Returned), "main.add9").unwrap();
        let line = String::from_utf8(buf).unwrap();
        assert_eq!(line, "    g7 main.add9(1, 2, 3, 4, 5, 6, 7, 8, 9) = (45, 0) 250ns\n");
    }
}
