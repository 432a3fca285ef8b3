//! `tracer ps`: every Go process the tracer can see, where it lives (PID namespaces,
//! container), what it runs, and which Dagger engine is the inner dev engine.
use std::io::Write;

use clap::Args;
use serde::Serialize;

use crate::target::{GoProcess, scan_go_processes};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// One JSON object per process, then a summary object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Record<'a> {
    kind: &'static str,
    /// The pid in the tracer's PID namespace (what --pid takes).
    pid: u32,
    /// The pid in the initial PID namespace (null when the tracer runs in another one).
    host_pid: Option<u32>,
    /// The pid in the process's own PID namespace.
    ns_pid: u32,
    /// NSpid: from the tracer's namespace down to the process's own.
    ns_pids: &'a [u32],
    pid_ns_depth: usize,
    pid_ns: Option<u64>,
    container: Option<&'a str>,
    /// The executable as the process sees it (where /proc/PID/exe points).
    exe: String,
    go_version: &'a str,
    stripped: Option<bool>,
    dagger_engine: bool,
    code_line: Option<&'static str>,
    engine_version: Option<&'a str>,
    role: Option<&'static str>,
    network_name: Option<&'a str>,
    addr: &'a [String],
    debugaddr: Option<&'a str>,
    /// Why the tracer cannot trace this binary, if it cannot.
    problem: Option<&'a str>,
    cmdline: &'a str,
}

impl<'a> Record<'a> {
    fn of(p: &'a GoProcess) -> Record<'a> {
        let (proc_, bin) = (&p.process, &*p.binary);
        Record {
            kind: "go_process",
            pid: proc_.pid,
            host_pid: proc_.host_pid,
            ns_pid: proc_.ns_pid(),
            ns_pids: &proc_.ns_pids,
            pid_ns_depth: proc_.pid_ns_depth,
            pid_ns: proc_.pid_ns,
            container: proc_.container.as_deref(),
            exe: proc_.exe_link.display().to_string(),
            go_version: &bin.go_version,
            stripped: bin.stripped,
            dagger_engine: bin.dagger_engine,
            code_line: bin.code_line,
            engine_version: bin.engine_version.as_deref(),
            role: p.role.map(|r| r.as_str()),
            network_name: p.flags.network_name.as_deref(),
            addr: &p.flags.addrs,
            debugaddr: p.flags.debugaddr.as_deref(),
            problem: bin.problem.as_deref(),
            cmdline: &proc_.cmdline,
        }
    }
}

#[derive(Serialize)]
struct Summary {
    kind: &'static str,
    go_processes: usize,
    unreadable: usize,
    /// Distinct executable files examined (each read once, however many processes run it).
    files_read: usize,
}

pub fn run(args: PsArgs) -> anyhow::Result<i32> {
    let scan = scan_go_processes();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        for p in &scan.processes {
            serde_json::to_writer(&mut out, &Record::of(p))?;
            writeln!(out)?;
        }
        serde_json::to_writer(
            &mut out,
            &Summary {
                kind: "ps_summary",
                go_processes: scan.processes.len(),
                unreadable: scan.unreadable,
                files_read: scan.files_read,
            },
        )?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &scan.processes)?;
    }
    if scan.unreadable > 0 {
        let missing = crate::privileges::missing(&[crate::privileges::Capability::SysPtrace]);
        let hint = if missing.is_empty() {
            "(/proc/PID/exe denied even with CAP_SYS_PTRACE)"
        } else {
            "(hint: run as root, or grant CAP_SYS_PTRACE)"
        };
        let line = format!(
            "{} process{} could not be read {hint}",
            scan.unreadable,
            if scan.unreadable == 1 { "" } else { "es" }
        );
        if args.json {
            out.flush()?;
            eprintln!("{line}");
        } else {
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(0)
}

fn write_table(out: &mut impl Write, processes: &[GoProcess]) -> std::io::Result<()> {
    let rows: Vec<[String; 9]> = processes
        .iter()
        .map(|p| {
            let (proc_, bin) = (&p.process, &*p.binary);
            let dash = || "-".to_string();
            let engine = match (bin.dagger_engine, p.role) {
                (false, _) => dash(),
                (true, role) => {
                    let mut s = bin.code_line.unwrap_or("engine").to_string();
                    if let Some(role) = role {
                        s.push(' ');
                        s.push_str(role.as_str());
                    }
                    s
                }
            };
            let mut exe = proc_.exe_link.display().to_string();
            if let Some(problem) = &bin.problem {
                exe.push_str(&format!("  ({problem})"));
            }
            [
                proc_.pid.to_string(),
                proc_.host_pid.map_or_else(dash, |p| p.to_string()),
                proc_.ns_pid().to_string(),
                proc_.pid_ns_depth.to_string(),
                proc_.container.clone().unwrap_or_else(dash),
                if bin.go_version.is_empty() {
                    "?".into()
                } else {
                    bin.go_version.clone()
                },
                match bin.stripped {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "?".into(),
                },
                engine,
                exe,
            ]
        })
        .collect();
    let header = [
        "PID",
        "HOST",
        "NSPID",
        "DEPTH",
        "CONTAINER",
        "GO",
        "STRIPPED",
        "ENGINE",
        "EXE",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        writeln!(out, "{s}")
    };
    line(&header)?;
    for row in &rows {
        line(&row.each_ref().map(String::as_str))?;
    }
    if processes.is_empty() {
        writeln!(out, "(no Go processes)")?;
    }
    Ok(())
}
