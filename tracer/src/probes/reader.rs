use aya::maps::{MapData, RingBuf};
use tokio::io::unix::AsyncFd;

use super::captures::CaptureBox;
use crate::recording::Recorder;
use tracer_common::{Capture, EventHeader, GoCallEvent, GoCaptureEvent, GoStackEvent, record};

/// One probe hit as userspace sees it: the fixed part, and the captured values of
/// probes that have a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub call: GoCallEvent,
    pub captures: Option<CaptureBox>,
    /// PCs of the user stack, innermost first, for probes that walk it (empty otherwise).
    pub stack: Vec<u64>,
}

impl Event {
    pub fn plain(call: GoCallEvent) -> Event {
        Event {
            call,
            captures: None,
            stack: Vec::new(),
        }
    }

    /// Decodes a ring-buffer record by the kind its header names; `None` (counted as
    /// malformed by the reader) for an unknown kind, another layout version or a size
    /// that is not the record's.
    pub fn from_bytes(bytes: &[u8]) -> Option<Event> {
        match EventHeader::from_bytes(bytes)?.record {
            record::CAPTURE => capture_event(bytes),
            record::STACK => GoStackEvent::from_bytes(bytes).map(|ev| Event {
                call: ev.call,
                captures: None,
                stack: ev.stack().to_vec(),
            }),
            record::CALL => GoCallEvent::from_bytes(bytes).map(Event::plain),
            _ => None,
        }
    }

    pub fn capture(&self, i: usize) -> Option<&Capture> {
        self.captures.as_ref().and_then(|c| c.get(i))
    }
}

/// A capture record, its captures copied once, straight into their box (the records are
/// 504 bytes: a copy of the whole record first was a tenth of a replay's time), a box
/// freed before reused.
fn capture_event(bytes: &[u8]) -> Option<Event> {
    const SIZE: usize = std::mem::size_of::<GoCaptureEvent>();
    const AT: usize = std::mem::offset_of!(GoCaptureEvent, captures);
    let header = EventHeader::from_bytes(bytes)?;
    if bytes.len() != SIZE
        || header.record != record::CAPTURE
        || header.version != tracer_common::EVENT_LAYOUT_VERSION
        || header.size as usize != SIZE
    {
        return None;
    }
    let head = &bytes[..std::mem::size_of::<GoCallEvent>()];
    // SAFETY: the record is exactly a GoCaptureEvent (checked above), so the head is a
    // whole GoCallEvent; read_unaligned copes with any alignment, and every bit pattern
    // is a valid GoCallEvent (all plain integers).
    let call = unsafe { std::ptr::read_unaligned(head.as_ptr() as *const GoCallEvent) };
    Some(Event {
        call,
        captures: Some(CaptureBox::from_bytes(&bytes[AT..])?),
        stack: Vec::new(),
    })
}

/// Reads probe events from the ring buffer as they arrive.
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Records shorter than an event: should never happen, counted rather than hidden.
    pub malformed: u64,
    /// Events read so far: zero after a whole run means no probe ever fired.
    pub received: u64,
    /// Where every record goes as delivered, before decoding (`--record`).
    recorder: Option<Recorder>,
}

impl EventReader {
    /// Must be called inside a tokio runtime.
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<EventReader> {
        // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for as long
        // as it lives, and the AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register(ring) }.map_err(std::io::Error::from)?;
        Ok(EventReader {
            ring,
            malformed: 0,
            received: 0,
            recorder: None,
        })
    }

    /// Keeps every record from now on in `recorder`.
    pub fn record_to(&mut self, recorder: Recorder) {
        self.recorder = Some(recorder);
    }

    pub fn take_recorder(&mut self) -> Option<Recorder> {
        self.recorder.take()
    }

    /// Whether records are kept (`--record`).
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Keeps a fact the pipeline applied after the records read so far (`hang --watch`).
    pub fn record_live_fact(&mut self, json: &[u8]) {
        if let Some(r) = self.recorder.as_mut() {
            r.live_fact(json);
        }
    }

    /// Waits until the kernel side signals events (then [`Self::drain_now`] takes them).
    /// The readiness is cleared first, so events queued during the drain wake us again.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        let mut guard = self.ring.readable_mut().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Hands every event queued right now to `sink`, without waiting.
    pub fn drain_now(&mut self, sink: &mut impl FnMut(Event)) -> usize {
        let n = drain(
            self.ring.get_mut(),
            &mut self.malformed,
            self.recorder.as_mut(),
            sink,
        );
        self.received += n as u64;
        n
    }
}

/// Events handed over per drain at most: a target producing events faster than they are
/// processed must not keep the event loop from seeing a stop (signal, deadline) for long.
/// What is left is taken at the next turn (the reader also drains on a short timer).
pub const MAX_PER_DRAIN: usize = 65_536;

fn drain(
    ring: &mut RingBuf<MapData>,
    malformed: &mut u64,
    mut recorder: Option<&mut Recorder>,
    sink: &mut impl FnMut(Event),
) -> usize {
    let mut n = 0;
    while n < MAX_PER_DRAIN
        && let Some(item) = ring.next()
    {
        if let Some(r) = recorder.as_deref_mut() {
            r.ring_record(&item);
        }
        match Event::from_bytes(&item) {
            Some(event) => {
                n += 1;
                sink(event);
            }
            None => *malformed += 1,
        }
    }
    if let Some(r) = recorder {
        r.write_if_old();
    }
    n
}

#[cfg(test)]
mod tests {
    use tracer_common::{EVENT_LAYOUT_VERSION, GoCallEvent};

    use super::*;

    fn call(header: EventHeader) -> GoCallEvent {
        GoCallEvent {
            header,
            kind: 1,
            probe_id: 2,
            tgid: 3,
            tid: 4,
            ts_ns: 5,
            goid: 6,
            stack_depth: 7,
            regs: [8; 9],
        }
    }

    #[test]
    fn records_are_decoded_by_their_header_never_by_length() {
        let size = std::mem::size_of::<GoCallEvent>();
        let good = call(EventHeader::new(record::CALL, size));
        assert_eq!(
            Event::from_bytes(good.as_bytes()).map(|e| e.call),
            Some(good)
        );
        let malformed = [
            // A layout this tracer does not know.
            EventHeader {
                version: EVENT_LAYOUT_VERSION + 1,
                ..good.header
            },
            // An unknown kind of record.
            EventHeader {
                record: 99,
                ..good.header
            },
            // A capture record's kind on a call's bytes.
            EventHeader::new(record::CAPTURE, size),
        ];
        for header in malformed {
            assert!(
                Event::from_bytes(call(header).as_bytes()).is_none(),
                "{header:?}"
            );
        }
        // A capture record reads as the whole record would.
        let size = std::mem::size_of::<GoCaptureEvent>();
        let mut bytes: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let header = EventHeader::new(record::CAPTURE, size);
        bytes[..8].copy_from_slice(call(header).as_bytes()[..8].as_ref());
        let whole = GoCaptureEvent::from_bytes(&bytes).expect("a capture record");
        let ev = Event::from_bytes(&bytes).expect("a capture record");
        assert_eq!(ev.call, whole.call);
        assert_eq!(ev.captures.as_deref(), Some(&whole.captures));
        assert!(Event::from_bytes(&bytes[..size - 1]).is_none());
        // Longer than it says.
        let mut long = good.as_bytes().to_vec();
        long.push(0);
        assert!(Event::from_bytes(&long).is_none());
    }
}
