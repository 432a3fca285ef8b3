//! A `tracer` running in the background while a test drives its target.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Stdio},
    sync::mpsc,
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{SpawnRetrying, tracer};

/// A tracer running in the background, its stderr lines collected as they come.
pub struct BackgroundTracer {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    /// The stderr lines read so far.
    pub seen: Vec<String>,
}

impl BackgroundTracer {
    /// Starts `tracer ARGS -o RECORDS`.
    pub fn start(args: &[&str], records: &Path) -> BackgroundTracer {
        let mut child = tracer()
            .args(args)
            .arg("-o")
            .arg(records)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn_retrying()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("tracer: | {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        BackgroundTracer {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the stderr line that says the probes are attached.
    pub fn wait_attached(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.seen.iter().any(|l| l.starts_with("tracer: tracing")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(e) => panic!("no `tracing` line from the tracer ({e}): {:?}", self.seen),
            }
        }
    }

    /// Waits for the exit; returns the status and how long it took from `since`.
    pub fn wait_exit(&mut self, since: Instant) -> (Option<i32>, Duration) {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "the tracer did not exit"
            );
            sleep(Duration::from_millis(5));
        };
        let took = since.elapsed();
        // The rest of stderr (the reader thread ends at EOF).
        self.seen.extend(self.lines.iter());
        (status.code(), took)
    }
}

impl Drop for BackgroundTracer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BackgroundTracer {
    /// Ctrl-C, as a user stops a live trace; returns the exit code (130 after a clean
    /// stop, as for any program Ctrl-C ends).
    pub fn interrupt(&mut self) -> Option<i32> {
        const SIGINT: i32 = 2;
        // SAFETY: kill has no memory preconditions.
        let sent = unsafe { kill(self.child.id() as i32, SIGINT) };
        assert_eq!(sent, 0, "SIGINT to the tracer");
        let since = Instant::now();
        self.wait_exit(since).0
    }
}

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
