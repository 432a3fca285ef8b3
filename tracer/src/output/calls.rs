//! Output of `tracer funcs`: one line or JSON object per call, and the summary.
use std::io::{self, Write};

use super::{
    format::{duration, register},
    json::{JsonObject, quoted},
    records::{FuncTotals, Record},
};
use crate::{
    model::{
        calls::{CallEvictions, CallRecord, CallStatus},
        summary::CallSummary,
    },
    probes::KernelFailures,
};

/// Renders call records to the record sink, as human lines or JSON lines.
pub struct CallWriter {
    sink: Box<dyn Write + Send>,
    json: bool,
    names: Vec<String>,
    /// The names as JSON string literals, escaped once.
    json_names: Vec<String>,
    line: Vec<u8>,
    /// The first write error, reported at the next flush (a closed pipe is not one).
    error: Option<io::Error>,
    /// The traced process's pid as this tracer's PID namespace numbers it (events carry
    /// the host's number, which differs inside a container).
    pid: Option<u32>,
}

impl CallWriter {
    pub fn new(sink: Box<dyn Write + Send>, json: bool, names: Vec<String>) -> CallWriter {
        let json_names = names.iter().map(|n| quoted(n)).collect();
        CallWriter {
            sink,
            json,
            names,
            json_names,
            line: Vec::with_capacity(512),
            error: None,
            pid: None,
        }
    }

    /// Records name the process by `pid` (the tracer's view) besides the host pid.
    pub fn with_pid(mut self, pid: u32) -> CallWriter {
        self.pid = Some(pid);
        self
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn write(&mut self, rec: &CallRecord) {
        self.line.clear();
        let id = rec.probe_id as usize;
        if self.json {
            let name = self.json_names.get(id).map_or("\"?\"", String::as_str);
            json_line(&mut self.line, rec, name, self.pid);
        } else {
            let name = self.names.get(id).map_or("?", String::as_str);
            human_line(&mut self.line, rec, name);
        }
        if let Err(e) = self.sink.write_all(&self.line)
            && e.kind() != io::ErrorKind::BrokenPipe
            && self.error.is_none()
        {
            self.error = Some(e);
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.sink.flush() {
            // A closed pipe (e.g. `| head`) ends the output, not the tracing.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// The summary: a JSON record in the sink when writing JSON, and always a
    /// human table on stderr.
    pub fn summary(
        &mut self,
        s: &CallSummary,
        lost_events: u64,
        unreadable: u64,
        kernel: KernelFailures,
        evicted: CallEvictions,
    ) -> io::Result<()> {
        if self.json {
            let ctx = SummaryContext {
                names: &self.names,
                lost_events,
                unreadable,
                kernel,
                evicted,
            };
            write_summary_json(self.sink.as_mut(), s, &ctx)?;
        }
        self.flush()?;
        let ctx = SummaryContext {
            names: &self.names,
            lost_events,
            unreadable,
            kernel,
            evicted,
        };
        write_summary_human(&mut io::stderr(), s, &ctx)
    }
}

fn json_line(buf: &mut Vec<u8>, rec: &CallRecord, quoted_name: &str, pid: Option<u32>) {
    JsonObject::begin(buf)
        .raw("kind", "\"func_call\"")
        .raw("func", quoted_name)
        .u64("pid", pid.unwrap_or(rec.tgid).into())
        .u64("host_pid", rec.tgid.into())
        .opt_u64("goid", rec.goid)
        .u64("tid", rec.tid.into())
        .opt_u64("start_ns", rec.start_ns)
        .opt_u64("end_ns", rec.end_ns)
        .opt_u64("duration_ns", rec.duration_ns())
        .opt_u64s("args", rec.args.as_ref().map(|a| &a[..]))
        .opt_u64s("ret", rec.ret.as_ref().map(|r| &r[..]))
        .raw("status", status_json(rec.status))
        .end();
}

fn status_json(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Returned => "\"returned\"",
        CallStatus::Unwound => "\"unwound\"",
        CallStatus::Unfinished => "\"unfinished\"",
        CallStatus::EntryOnly => "\"entry_only\"",
        CallStatus::NoEntry => "\"no_entry\"",
    }
}

fn regs(values: &[u64]) -> String {
    values
        .iter()
        .map(|v| register(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `g42 main.add9(1, 2, ...) = (45, 0) 1.20us` — results show RAX and RBX, the
/// registers that hold one- and two-word results.
fn human_line(buf: &mut Vec<u8>, rec: &CallRecord, func: &str) {
    let goid = rec.goid.map_or("g?".to_string(), |g| format!("g{g}"));
    let args = rec
        .args
        .map_or("(?)".to_string(), |a| format!("({})", regs(&a)));
    let tail = match (rec.ret, rec.duration_ns()) {
        (Some(r), Some(d)) => format!(" = ({}) {}", regs(&r[..2]), duration(d)),
        (Some(r), None) => format!(" = ({}) [{}]", regs(&r[..2]), rec.status.as_str()),
        (None, _) => format!(" [{}]", rec.status.as_str()),
    };
    // Writing into a Vec cannot fail.
    let _ = writeln!(buf, "{goid:>6} {func}{args}{tail}");
}

struct SummaryContext<'a> {
    names: &'a [String],
    lost_events: u64,
    unreadable: u64,
    kernel: KernelFailures,
    evicted: CallEvictions,
}

fn write_summary_human(
    out: &mut dyn Write,
    s: &CallSummary,
    ctx: &SummaryContext,
) -> io::Result<()> {
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
        ctx.unreadable,
    )?;
    if ctx.lost_events > 0 {
        writeln!(
            out,
            "warning: {} events were lost because the ring buffer was full; calls around them may be reported as unwound or no_entry (hint: --ring-mb)",
            ctx.lost_events
        )?;
    }
    if let Some(k) = ctx.kernel.describe() {
        writeln!(out, "{k}")?;
    }
    if let Some(e) = ctx.evicted.describe() {
        writeln!(out, "evicted: {e}")?;
    }
    Ok(())
}

fn write_summary_json(
    out: &mut dyn Write,
    s: &CallSummary,
    ctx: &SummaryContext,
) -> io::Result<()> {
    let functions: Vec<_> = s
        .per_func
        .iter()
        .enumerate()
        .filter(|(_, t)| t.calls > 0)
        .map(|(id, t)| FuncTotals {
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
    Record::FuncsSummary {
        calls: s.total(|t| t.calls),
        unwound: s.total(|t| t.unwound),
        lost_events: ctx.lost_events,
        kernel_failures: ctx.kernel,
        unreadable_events: ctx.unreadable,
        evicted_state: ctx.evicted,
        functions,
    }
    .write_line(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: CallStatus) -> CallRecord {
        CallRecord {
            frame: 1,
            parent: None,
            entry_captures: None,
            ret_captures: None,
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
        json_line(
            &mut buf,
            &record(CallStatus::Returned),
            &quoted("main.add9"),
            Some(42),
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["kind"], "func_call");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["host_pid"], 1);
        assert_eq!(v["func"], "main.add9");
        assert_eq!(v["goid"], 7);
        assert_eq!(v["args"].as_array().unwrap().len(), 9);
        assert_eq!(v["ret"][0], 45);
        assert_eq!(v["duration_ns"], 250);
        assert_eq!(v["status"], "returned");

        buf.clear();
        json_line(
            &mut buf,
            &record(CallStatus::Unwound),
            &quoted("main.f"),
            None,
        );
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert!(v["ret"].is_null() && v["duration_ns"].is_null());
        assert_eq!(v["status"], "unwound");
    }

    #[test]
    fn human_summary_names_lost_events_and_evictions() {
        let mut s = CallSummary::new(1);
        s.add(&record(CallStatus::Unfinished));
        let names = ["main.f".to_owned()];
        let mut ctx = SummaryContext {
            names: &names,
            lost_events: 12,
            unreadable: 0,
            kernel: KernelFailures::default(),
            evicted: CallEvictions {
                goroutines: 0,
                idle_goroutines: 3,
                idle_goroutines_revived: 1,
            },
        };
        let mut buf = Vec::new();
        write_summary_human(&mut buf, &s, &ctx).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("lost events: 12"), "{text}");
        assert!(
            text.contains(
                "evicted: 3 open calls of goroutines silent since a loss, 1 of which goroutines heard of again"
            ),
            "{text}"
        );
        // Nothing evicted: no line.
        ctx.evicted = CallEvictions::default();
        let mut buf = Vec::new();
        write_summary_human(&mut buf, &s, &ctx).unwrap();
        assert!(!String::from_utf8(buf).unwrap().contains("evicted"));
    }

    #[test]
    fn human_line_format() {
        let mut buf = Vec::new();
        human_line(&mut buf, &record(CallStatus::Returned), "main.add9");
        let line = String::from_utf8(buf).unwrap();
        assert_eq!(
            line,
            "    g7 main.add9(1, 2, 3, 4, 5, 6, 7, 8, 9) = (45, 0) 250ns\n"
        );
    }
}
