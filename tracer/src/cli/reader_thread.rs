//! A thread of its own that reads the engine's goroutines (`runtime.allgs`, through a
//! `model::goroutines::Reader`) on request, so that the event loop never waits for a read:
//! it hands over one request at a time and picks up the answer at a later turn. Used for
//! the timeline's goroutine names and for `--light`'s goroutine exits.
use std::sync::mpsc;

use crate::{gobin::GoBinary, model::goroutines::Reader, target::memory::Memory};

pub struct ReaderThread<Q, A> {
    requests: mpsc::Sender<(u64, Q)>,
    answers: mpsc::Receiver<A>,
    in_flight: bool,
}

impl<Q: Send, A: Send> ReaderThread<Q, A> {
    /// Starts the thread (it ends when this is dropped). `work` answers a request with the
    /// engine's memory and its reader, None when the binary's runtime layout is unknown.
    pub fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        binary: &'env GoBinary,
        pid: u32,
        mut work: impl FnMut(Option<&mut Reader<'env>>, &Memory, Q) -> A + Send + 'scope,
    ) -> Self
    where
        Q: 'scope,
        A: 'scope,
    {
        let (requests, asked) = mpsc::channel::<(u64, Q)>();
        let (done, answers) = mpsc::channel();
        scope.spawn(move || {
            let mem = Memory::new(pid);
            // Built at the first request: the load bias is known only once the target runs.
            let mut reader: Option<Option<Reader>> = None;
            for (bias, request) in asked {
                let reader = reader.get_or_insert_with(|| Reader::new(binary, bias).ok());
                if done.send(work(reader.as_mut(), &mem, request)).is_err() {
                    break;
                }
            }
        });
        ReaderThread {
            requests,
            answers,
            in_flight: false,
        }
    }

    /// Whether a request is under way.
    pub fn busy(&self) -> bool {
        self.in_flight
    }

    /// Hands over a request (`bias`: the target's load bias) unless one is under way.
    pub fn ask(&mut self, bias: u64, request: Q) -> bool {
        if self.in_flight || self.requests.send((bias, request)).is_err() {
            return false;
        }
        self.in_flight = true;
        true
    }

    /// The answer to the request under way, if it came; with `wait`, waits for it (None
    /// then means the thread is gone). Once answered or waited for, none is under way.
    pub fn answer(&mut self, wait: bool) -> Option<A> {
        if !self.in_flight {
            return None;
        }
        let got = if wait {
            self.answers.recv().ok()
        } else {
            self.answers.try_recv().ok()
        };
        if got.is_some() || wait {
            self.in_flight = false;
        }
        got
    }
}
