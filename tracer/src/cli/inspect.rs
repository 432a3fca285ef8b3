//! `tracer inspect`: what the tracer knows about a Go binary and where probes go.
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::gobin::{EntryKind, Function, GoBinary, OffsetSource};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The Go executable (stripped or not), or /proc/PID/exe.
    binary: PathBuf,
    /// Also show the probe plan of functions whose full name matches (anchored).
    #[arg(long = "match", value_name = "REGEX")]
    pattern: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    path: String,
    go_version: String,
    main_path: String,
    /// None for a build outside any module (GOPATH mode, or `go build file.go`).
    main_module: Option<String>,
    stripped: bool,
    has_dwarf: bool,
    goid_offset: u64,
    goid_offset_source: &'static str,
    functions: usize,
    settings: Vec<(String, String)>,
    matches: Vec<FunctionReport>,
}

#[derive(Serialize)]
struct FunctionReport {
    name: String,
    entry: u64,
    end: u64,
    file: Option<String>,
    line: Option<u32>,
    probe: Option<ProbeReport>,
    /// Why no probe plan could be made, if none could.
    error: Option<String>,
}

#[derive(Serialize)]
struct ProbeReport {
    entry_kind: &'static str,
    entry_vaddr: u64,
    entry_file_offset: Option<u64>,
    entry_insn: String,
    rets: Vec<Location>,
    tail_jumps: Vec<Location>,
}

#[derive(Serialize)]
struct Location {
    vaddr: u64,
    file_offset: Option<u64>,
}

pub fn run(args: InspectArgs) -> anyhow::Result<i32> {
    let binary = GoBinary::open(&args.binary)?;
    let regex = args
        .pattern
        .as_deref()
        .map(super::anchored_regex)
        .transpose()?;
    let matches = match &regex {
        Some(re) => binary
            .find_functions(re)
            .into_iter()
            .map(|f| describe(&binary, f))
            .collect(),
        None => Vec::new(),
    };
    let info = binary.build_info();
    let goid = binary.goid_offset();
    let report = Report {
        path: args.binary.display().to_string(),
        go_version: binary.go_version().to_string(),
        main_path: info.path.clone(),
        main_module: Some(info.main.path.clone()).filter(|m| !m.is_empty()),
        stripped: binary.stripped(),
        has_dwarf: binary.has_dwarf(),
        goid_offset: goid.offset,
        goid_offset_source: match goid.source {
            OffsetSource::Dwarf => "dwarf",
            OffsetSource::Table => "table",
        },
        functions: binary.functions().len(),
        settings: info.settings.clone(),
        matches,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report, regex.is_some());
    }
    Ok(0)
}

fn describe(binary: &GoBinary, f: &Function) -> FunctionReport {
    let line = binary.source_line(f, f.entry);
    let (probe, error) = match binary.probe_plan(f) {
        Ok(plan) => {
            let loc = |vaddr: u64| Location {
                vaddr,
                file_offset: binary.file_offset(vaddr),
            };
            let probe = ProbeReport {
                entry_kind: match plan.entry_kind {
                    EntryKind::AfterStackCheck => "after_stack_check",
                    EntryKind::NoStackCheck => "no_stack_check",
                    EntryKind::StackCheckJump => "stack_check_jump",
                },
                entry_vaddr: plan.entry,
                entry_file_offset: binary.file_offset(plan.entry),
                entry_insn: plan.entry_insn.clone(),
                rets: plan.rets.iter().map(|r| loc(*r)).collect(),
                tail_jumps: plan.tail_jumps.iter().map(|r| loc(*r)).collect(),
            };
            (Some(probe), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    FunctionReport {
        name: f.name.clone(),
        entry: f.entry,
        end: f.end,
        file: line.as_ref().map(|l| l.file.clone()),
        line: line.map(|l| l.line),
        probe,
        error,
    }
}

fn hex(v: Option<u64>) -> String {
    v.map_or("?".into(), |v| format!("{v:#x}"))
}

fn print_human(r: &Report, matched: bool) {
    println!("binary       {}", r.path);
    println!("go version   {}", r.go_version);
    if !r.main_path.is_empty() {
        match &r.main_module {
            Some(m) => println!("main         {} (module {m})", r.main_path),
            None => println!("main         {} (no module)", r.main_path),
        }
    }
    let stripped = if r.stripped {
        "yes (no symbol table, no DWARF)"
    } else {
        "no"
    };
    println!("stripped     {stripped}");
    println!(
        "goid offset  {} (from {})",
        r.goid_offset, r.goid_offset_source
    );
    println!("functions    {}", r.functions);
    for (k, v) in &r.settings {
        println!("build        {k}={v}");
    }
    if !matched {
        return;
    }
    if r.matches.is_empty() {
        println!("\nno function matches");
    }
    for f in &r.matches {
        let at = match (&f.file, f.line) {
            (Some(file), Some(line)) => format!("{file}:{line}"),
            _ => "?".into(),
        };
        println!("\n{}  {at}", f.name);
        println!("  entry {:#x}  size {}", f.entry, f.end - f.entry);
        match (&f.probe, &f.error) {
            (Some(p), _) => {
                let why = match p.entry_kind {
                    "after_stack_check" => "after the stack-growth check",
                    "stack_check_jump" => {
                        "on the stack-growth check's jump (emulated; hits that grow the stack are dropped)"
                    }
                    _ => "at offset 0: no stack check (frameless leaf or nosplit)",
                };
                println!(
                    "  entry probe +{:#x} file offset {} `{}` ({why})",
                    p.entry_vaddr - f.entry,
                    hex(p.entry_file_offset),
                    p.entry_insn
                );
                let rets: Vec<_> = p
                    .rets
                    .iter()
                    .map(|l| format!("+{:#x} (file {})", l.vaddr - f.entry, hex(l.file_offset)))
                    .collect();
                println!(
                    "  RET probes  {}",
                    if rets.is_empty() {
                        "none".into()
                    } else {
                        rets.join(", ")
                    }
                );
                if !p.tail_jumps.is_empty() {
                    println!(
                        "  tail jumps  {} (calls leaving this way are reported as unwound)",
                        p.tail_jumps.len()
                    );
                }
            }
            (None, Some(err)) => println!("  no probe plan: {err}"),
            (None, None) => {}
        }
    }
}
