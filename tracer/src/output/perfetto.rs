//! Perfetto timelines (`--format perfetto -o FILE`, open in ui.perfetto.dev): one track
//! per goroutine under the process, each cache call a slice on its goroutine's track
//! (nested calls nest), a flow through the calls that shared one execution (the miss that
//! ran it and the joins that waited on it); for `tracer locks`, each contended wait a
//! slice on the waiter, with a flow from the goroutine whose release ended it. Packets are written as they come, in
//! Perfetto's protobuf format (a `Trace` is its repeated `packet` field, so packets can be
//! appended one by one); names are interned per sequence, so a million calls stay small.
//!
//! The messages below are the subset of Perfetto's `perfetto_trace.proto` this writer
//! uses, with Perfetto's field numbers, encoded by prost.
use std::{collections::HashMap, io::Write};

use prost::Message;

use crate::model::{
    cache::{CacheCall, CacheOutput, Outcome},
    locks::Contention,
};

#[derive(Clone, PartialEq, Message)]
struct TracePacket {
    #[prost(uint64, optional, tag = "8")]
    timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "10")]
    trusted_packet_sequence_id: Option<u32>,
    #[prost(message, optional, tag = "11")]
    track_event: Option<TrackEvent>,
    #[prost(message, optional, tag = "12")]
    interned_data: Option<InternedData>,
    #[prost(uint32, optional, tag = "13")]
    sequence_flags: Option<u32>,
    #[prost(message, optional, tag = "60")]
    track_descriptor: Option<TrackDescriptor>,
}

#[derive(Clone, PartialEq, Message)]
struct TrackDescriptor {
    #[prost(uint64, optional, tag = "1")]
    uuid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
    #[prost(message, optional, tag = "3")]
    process: Option<ProcessDescriptor>,
    #[prost(uint64, optional, tag = "5")]
    parent_uuid: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct ProcessDescriptor {
    #[prost(int32, optional, tag = "1")]
    pid: Option<i32>,
    #[prost(string, optional, tag = "6")]
    process_name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct TrackEvent {
    #[prost(message, repeated, tag = "4")]
    debug_annotations: Vec<DebugAnnotation>,
    #[prost(int32, optional, tag = "9")]
    r#type: Option<i32>,
    #[prost(uint64, optional, tag = "10")]
    name_iid: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    track_uuid: Option<u64>,
    #[prost(fixed64, repeated, packed = "false", tag = "47")]
    flow_ids: Vec<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct DebugAnnotation {
    #[prost(uint64, optional, tag = "1")]
    name_iid: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    uint_value: Option<u64>,
    #[prost(string, optional, tag = "6")]
    string_value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct InternedData {
    #[prost(message, repeated, tag = "2")]
    event_names: Vec<InternedString>,
    #[prost(message, repeated, tag = "3")]
    debug_annotation_names: Vec<InternedString>,
}

/// `EventName` and `DebugAnnotationName` have the same shape.
#[derive(Clone, PartialEq, Message)]
struct InternedString {
    #[prost(uint64, optional, tag = "1")]
    iid: Option<u64>,
    #[prost(string, optional, tag = "2")]
    name: Option<String>,
}

/// `TrackEvent.Type`.
const SLICE_BEGIN: i32 = 1;
const SLICE_END: i32 = 2;
const INSTANT: i32 = 3;
/// `TracePacket.SequenceFlags`.
const INCREMENTAL_STATE_CLEARED: u32 = 1;
const NEEDS_INCREMENTAL_STATE: u32 = 2;
/// The one sequence this writer emits on.
const SEQUENCE: u32 = 0x7472_6163;
/// `Trace.packet`: field 1, length-delimited.
const TRACE_PACKET_KEY: u8 = 0x0a;

/// Strings interned on the sequence: the first use sends the string with its id.
#[derive(Default)]
struct Interned {
    ids: HashMap<String, u64>,
}

impl Interned {
    /// The id of `s`, and whether it is new (to be sent in this packet's interned data).
    fn id(&mut self, s: &str) -> (u64, bool) {
        if let Some(&id) = self.ids.get(s) {
            return (id, false);
        }
        let id = self.ids.len() as u64 + 1;
        self.ids.insert(s.to_owned(), id);
        (id, true)
    }
}

/// Streams cache records as a Perfetto trace.
pub struct PerfettoWriter {
    out: Box<dyn Write + Send>,
    process_uuid: u64,
    goroutines: HashMap<u64, u64>,
    names: Interned,
    arg_names: Interned,
    started: bool,
    buf: Vec<u8>,
    /// Lock hand-offs drawn as flows so far (their flow ids).
    lock_flows: u64,
}

impl PerfettoWriter {
    pub fn new(out: Box<dyn Write + Send>) -> PerfettoWriter {
        PerfettoWriter {
            out,
            process_uuid: 1,
            goroutines: HashMap::new(),
            names: Interned::default(),
            arg_names: Interned::default(),
            started: false,
            buf: Vec::new(),
            lock_flows: 0,
        }
    }

    fn packet(&mut self, mut p: TracePacket) -> std::io::Result<()> {
        p.trusted_packet_sequence_id = Some(SEQUENCE);
        p.sequence_flags = Some(if self.started {
            NEEDS_INCREMENTAL_STATE
        } else {
            INCREMENTAL_STATE_CLEARED
        });
        self.started = true;
        self.buf.clear();
        self.buf.push(TRACE_PACKET_KEY);
        prost::encoding::encode_varint(p.encoded_len() as u64, &mut self.buf);
        p.encode(&mut self.buf)
            .expect("a Vec grows to whatever is encoded");
        self.out.write_all(&self.buf)
    }

    /// The process track, described once before anything on it.
    pub fn begin(&mut self, pid: u32, name: &str) -> std::io::Result<()> {
        self.process_uuid = 1 << 32 | u64::from(pid);
        self.packet(TracePacket {
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(self.process_uuid),
                process: Some(ProcessDescriptor {
                    pid: Some(pid as i32),
                    process_name: Some(name.to_owned()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The track of goroutine `goid`, described the first time it is used.
    fn goroutine_track(&mut self, goid: u64) -> std::io::Result<u64> {
        if let Some(&uuid) = self.goroutines.get(&goid) {
            return Ok(uuid);
        }
        let uuid = 2 << 32 | (self.goroutines.len() as u64 + 1);
        self.goroutines.insert(goid, uuid);
        self.packet(TracePacket {
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(uuid),
                name: Some(format!("goroutine {goid}")),
                parent_uuid: Some(self.process_uuid),
                ..Default::default()
            }),
            ..Default::default()
        })?;
        Ok(uuid)
    }

    /// An instant named `name` on `track`, its `event` argument set, on flow `flow`.
    fn flow_instant(
        &mut self,
        track: u64,
        at_ns: u64,
        name: String,
        event: &str,
        flow: u64,
    ) -> std::io::Result<()> {
        let mut interned = InternedData::default();
        let name_iid = self.event_name(&mut interned, name);
        let args = self.annotations(&mut interned, vec![("event", Some(event.into()), None)]);
        self.packet(TracePacket {
            timestamp: Some(at_ns),
            interned_data: Some(interned),
            track_event: Some(TrackEvent {
                r#type: Some(INSTANT),
                name_iid: Some(name_iid),
                track_uuid: Some(track),
                debug_annotations: args,
                flow_ids: vec![flow],
            }),
            ..Default::default()
        })
    }

    fn slice_end(&mut self, track: u64, at_ns: u64) -> std::io::Result<()> {
        self.packet(TracePacket {
            timestamp: Some(at_ns),
            track_event: Some(TrackEvent {
                r#type: Some(SLICE_END),
                track_uuid: Some(track),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The interned id of event name `name`, sent in `interned` if new.
    fn event_name(&mut self, interned: &mut InternedData, name: String) -> u64 {
        let (iid, new) = self.names.id(&name);
        if new {
            interned.event_names.push(InternedString {
                iid: Some(iid),
                name: Some(name),
            });
        }
        iid
    }

    /// Debug annotations of the given (name, string, number) arguments; absent ones skipped.
    fn annotations(
        &mut self,
        interned: &mut InternedData,
        pairs: Vec<(&str, Option<String>, Option<u64>)>,
    ) -> Vec<DebugAnnotation> {
        let mut args = Vec::new();
        for (key, string, uint) in pairs {
            if string.is_none() && uint.is_none() {
                continue;
            }
            let (iid, new) = self.arg_names.id(key);
            if new {
                interned.debug_annotation_names.push(InternedString {
                    iid: Some(iid),
                    name: Some(key.to_owned()),
                });
            }
            args.push(DebugAnnotation {
                name_iid: Some(iid),
                uint_value: uint,
                string_value: string,
            });
        }
        args
    }

    /// A contended lock acquisition (`tracer locks`): a slice on the waiting goroutine for
    /// the wait, and, when the releaser is known, a flow from a `release` instant on its
    /// goroutine to an `acquired` instant where the wait ended.
    pub fn lock_wait(&mut self, c: &Contention) -> std::io::Result<()> {
        let track = self.goroutine_track(c.waiter)?;
        let end = c.start_ns + c.wait_ns;
        let lock = c.name.unwrap_or(c.lock_type.as_str());
        let mut interned = InternedData::default();
        let name_iid = self.event_name(&mut interned, format!("wait {lock}"));
        let args = self.annotations(
            &mut interned,
            vec![
                ("event", Some("lock_wait".into()), None),
                ("lock", Some(format!("{:#x}", c.lock)), None),
                ("lock_type", Some(c.lock_type.as_str().into()), None),
                ("lock_name", c.name.map(str::to_owned), None),
                ("released_by", None, c.released_by),
            ],
        );
        self.packet(TracePacket {
            timestamp: Some(c.start_ns),
            interned_data: Some(interned),
            track_event: Some(TrackEvent {
                r#type: Some(SLICE_BEGIN),
                name_iid: Some(name_iid),
                track_uuid: Some(track),
                debug_annotations: args,
                ..Default::default()
            }),
            ..Default::default()
        })?;
        self.slice_end(track, end)?;
        let Some(releaser) = c.released_by else {
            return Ok(());
        };
        self.lock_flows += 1;
        let flow = 4 << 32 | self.lock_flows;
        let releaser_track = self.goroutine_track(releaser)?;
        self.flow_instant(
            releaser_track,
            end,
            format!("release {lock}"),
            "lock_release",
            flow,
        )?;
        self.flow_instant(
            track,
            end,
            format!("acquired {lock}"),
            "lock_acquired",
            flow,
        )
    }

    /// `hang --watch`: goroutine `goid` parked since `since_ns` (reported past the
    /// threshold); the slice ends at `parked_end`.
    pub fn parked_begin(
        &mut self,
        goid: u64,
        since_ns: u64,
        wait_reason: Option<&str>,
        waiting_on: Option<u64>,
    ) -> std::io::Result<()> {
        let track = self.goroutine_track(goid)?;
        let mut interned = InternedData::default();
        let reason = wait_reason.unwrap_or("blocked");
        let name_iid = self.event_name(&mut interned, format!("parked: {reason}"));
        let args = self.annotations(
            &mut interned,
            vec![
                ("event", Some("parked".into()), None),
                ("wait_reason", wait_reason.map(str::to_owned), None),
                ("waiting_on", waiting_on.map(|a| format!("{a:#x}")), None),
            ],
        );
        self.packet(TracePacket {
            timestamp: Some(since_ns),
            interned_data: Some(interned),
            track_event: Some(TrackEvent {
                r#type: Some(SLICE_BEGIN),
                name_iid: Some(name_iid),
                track_uuid: Some(track),
                debug_annotations: args,
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    pub fn parked_end(&mut self, goid: u64, at_ns: u64) -> std::io::Result<()> {
        let track = self.goroutine_track(goid)?;
        self.slice_end(track, at_ns)
    }

    /// A deadlock (`hang --watch`): an instant on each goroutine of the cycle, one flow
    /// through them.
    pub fn deadlock(&mut self, goids: &[u64], certain: bool, at_ns: u64) -> std::io::Result<()> {
        self.lock_flows += 1;
        let flow = 4 << 32 | self.lock_flows;
        let what = if certain {
            "deadlock"
        } else {
            "possible deadlock"
        };
        for &goid in goids {
            let track = self.goroutine_track(goid)?;
            self.flow_instant(track, at_ns, what.to_owned(), &what.replace(' ', "_"), flow)?;
        }
        Ok(())
    }

    pub fn record(&mut self, out: &CacheOutput) -> std::io::Result<()> {
        match out {
            CacheOutput::Call(c) => self.call(c),
            _ => Ok(()),
        }
    }

    fn call(&mut self, c: &CacheCall) -> std::io::Result<()> {
        let Some(start) = c.start_ns else {
            return Ok(());
        };
        let track = self.goroutine_track(c.goid)?;
        let outcome = c.outcome.map_or("unknown", Outcome::as_str);
        let field = c.identity.as_ref().and_then(|i| i.field.as_deref());
        let name = match field {
            Some(f) => format!("{f} ({outcome})"),
            None => format!("cache call ({outcome})"),
        };
        let mut interned = InternedData::default();
        let name_iid = self.event_name(&mut interned, name);
        let mut pairs = vec![
            ("outcome", Some(outcome.to_owned()), None),
            ("digest", c.digest.clone(), None),
            ("session", c.session.clone(), None),
            (
                "hit_route",
                c.hit_route.map(|r| r.as_str().to_owned()),
                None,
            ),
            ("parent_digest", c.parent_digest.clone(), None),
            ("exec_goid", None, c.exec_goid),
            ("waiters", None, c.waiters.map(u64::from)),
            ("result_id", None, c.result_id),
            ("error", c.error.clone(), None),
        ];
        if let Some(x) = &c.explain {
            let why: Vec<String> = x.differs.iter().map(|d| d.part.clone()).collect();
            pairs.push(("why", Some(why.join(", ")), None));
        }
        let args = self.annotations(&mut interned, pairs);
        // The calls that shared one execution (its miss and its joins) are one flow,
        // keyed by the goroutine that ran it.
        let flow_ids = match (c.outcome, c.exec_goid) {
            (Some(Outcome::Miss | Outcome::Join), Some(g)) => vec![3 << 32 | g],
            _ => Vec::new(),
        };
        let interned_data = (!interned.event_names.is_empty()
            || !interned.debug_annotation_names.is_empty())
        .then_some(interned);
        let Some(duration) = c.duration_ns else {
            // No end seen (light mode, a call cut by the stop): an instant at its start.
            return self.packet(TracePacket {
                timestamp: Some(start),
                interned_data,
                track_event: Some(TrackEvent {
                    r#type: Some(INSTANT),
                    name_iid: Some(name_iid),
                    track_uuid: Some(track),
                    debug_annotations: args,
                    flow_ids,
                }),
                ..Default::default()
            });
        };
        self.packet(TracePacket {
            timestamp: Some(start),
            interned_data,
            track_event: Some(TrackEvent {
                r#type: Some(SLICE_BEGIN),
                name_iid: Some(name_iid),
                track_uuid: Some(track),
                debug_annotations: args,
                flow_ids,
            }),
            ..Default::default()
        })?;
        self.slice_end(track, start + duration)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_length_delimited_trace_fields() {
        let sink = crate::output::MemorySink::default();
        let mut w = PerfettoWriter::new(Box::new(sink.clone()));
        w.begin(42, "engine").unwrap();
        let bytes = sink.take();
        assert_eq!(bytes[0], TRACE_PACKET_KEY);
        let len = bytes[1] as usize;
        assert_eq!(bytes.len(), 2 + len);
        let p = TracePacket::decode(&bytes[2..]).unwrap();
        assert_eq!(p.sequence_flags, Some(INCREMENTAL_STATE_CLEARED));
        let d = p.track_descriptor.unwrap();
        assert_eq!(d.process.unwrap().pid, Some(42));
    }
}
