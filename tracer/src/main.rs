use clap::{Parser, error::ErrorKind};
use tracer::{
    cli::{Cli, run},
    probes::ProbeError,
};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => exit_on_usage_error(err),
    };
    let verbose = cli.verbose;
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            // One line: our errors already carry their hint.
            eprintln!("tracer: {}", one_line(&err));
            if verbose {
                eprint!("{}", details(&err));
            }
            std::process::exit(1);
        }
    }
}

/// With `--verbose`: each cause on a line of its own, then the verifier's log if the
/// kernel refused a program.
fn details(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain().skip(1) {
        text.push_str(&format!("tracer: caused by: {cause}\n"));
    }
    let log = err
        .chain()
        .find_map(|c| c.downcast_ref::<ProbeError>()?.verifier_log());
    if let Some(log) = log {
        text.push_str("tracer: the verifier's log:\n");
        text.push_str(log.trim_end());
        text.push('\n');
    }
    text
}

/// A value our own parsers rejected (`--duration 0`) is one line, like every other bad
/// input; clap's other errors (help, version, a missing or unknown argument) print as clap
/// renders them, with the usage they need.
fn exit_on_usage_error(err: clap::Error) -> ! {
    if err.kind() == ErrorKind::ValueValidation {
        let text = err.to_string();
        // "error: invalid value '0' for '--duration <SECS>': <our text>", then usage lines.
        let first = text.lines().next().unwrap_or_default();
        eprintln!("tracer: {}", first.trim_start_matches("error: "));
        std::process::exit(2);
    }
    err.exit()
}

/// An error and its causes on one line, `outer: cause: cause`, leaving out every cause whose
/// text is already part of what is printed: many errors repeat their source in their own
/// message (an I/O error inside "cannot read /proc/1/exe: ..."), and printing the source again
/// would say it twice. A message with a hint is complete: the causes after it (the kernel's
/// EPERM behind "the tracer lacks CAP_BPF") are for `--verbose`.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        let part = part.trim();
        if part.is_empty() || text.contains(part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(part);
        if part.contains("(hint: ") {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{ProbeError, details, one_line};

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read /proc/1/exe: {source}")]
    struct Repeats {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(2);
        let err = anyhow::Error::new(Repeats { source: io });
        assert_eq!(
            one_line(&err),
            "cannot read /proc/1/exe: No such file or directory (os error 2)"
        );
        // An outer context that says the same as its cause.
        let err = anyhow::Error::new(std::io::Error::other("failed to create map LOST_EVENTS"))
            .context("failed to create map LOST_EVENTS");
        assert_eq!(one_line(&err), "failed to create map LOST_EVENTS");
        // New information is kept, in order.
        let err = anyhow::Error::new(std::io::Error::from_raw_os_error(13)).context("loading");
        assert_eq!(one_line(&err), "loading: Permission denied (os error 13)");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("not allowed to load eBPF programs: the tracer lacks CAP_BPF (hint: grant it)")]
    struct Hinted {
        source: std::io::Error,
    }

    #[test]
    fn a_hint_ends_the_line_and_verbose_shows_the_causes() {
        let err = anyhow::Error::new(Hinted {
            source: std::io::Error::from_raw_os_error(1),
        });
        assert_eq!(
            one_line(&err),
            "not allowed to load eBPF programs: the tracer lacks CAP_BPF (hint: grant it)"
        );
        assert_eq!(
            details(&err),
            "tracer: caused by: Operation not permitted (os error 1)\n"
        );
        let refused = anyhow::Error::new(ProbeError::Verifier {
            program: "tracer_probe".into(),
            source: std::io::Error::from_raw_os_error(13),
            log: "0: (85) call bpf_probe_read_user#112\nR1 type=ctx expected=fp\n".into(),
        });
        let line = one_line(&refused);
        assert!(!line.contains("R1 type"), "{line}");
        assert_eq!(
            details(&refused),
            "tracer: caused by: Permission denied (os error 13)\ntracer: the verifier's log:\n0: (85) call bpf_probe_read_user#112\nR1 type=ctx expected=fp\n"
        );
    }
}
