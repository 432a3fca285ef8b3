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
    goroutines::Goroutine,
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
    #[prost(message, optional, tag = "8")]
    counter: Option<CounterDescriptor>,
}

/// Marks a track as a counter track (its events are `TYPE_COUNTER` values).
#[derive(Clone, PartialEq, Message)]
struct CounterDescriptor {
    /// `CounterDescriptor.Unit`.
    #[prost(int32, optional, tag = "3")]
    unit: Option<i32>,
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
    #[prost(int64, optional, tag = "30")]
    counter_value: Option<i64>,
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
const COUNTER: i32 = 4;
/// `CounterDescriptor.Unit.UNIT_COUNT`.
const UNIT_COUNT: i32 = 2;
/// `TracePacket.SequenceFlags`.
const INCREMENTAL_STATE_CLEARED: u32 = 1;
const NEEDS_INCREMENTAL_STATE: u32 = 2;
/// The one sequence this writer emits on.
const SEQUENCE: u32 = 0x7472_6163;
/// The name of the cache entries counter track.
const CACHE_ENTRIES_TRACK: &str = "cache entries";
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

/// A goroutine's track: its uuid, and the function it is named by once one is known.
struct GoroutineTrack {
    uuid: u64,
    function: Option<String>,
}

/// Streams cache records as a Perfetto trace.
pub struct PerfettoWriter {
    out: Box<dyn Write + Send>,
    process_uuid: u64,
    goroutines: HashMap<u64, GoroutineTrack>,
    /// Counter tracks by name (refs held per session, cache entries) -> uuid.
    counters: HashMap<String, u64>,
    names: Interned,
    arg_names: Interned,
    started: bool,
    buf: Vec<u8>,
    /// Lock hand-offs drawn as flows so far (their flow ids).
    lock_flows: u64,
    /// First user functions of goroutines that have no track yet (`tracer cache` reads
    /// them from memory, maybe before the goroutine's first call ends), at most
    /// [`MAX_FUNCTIONS_AHEAD`].
    functions_ahead: HashMap<u64, String>,
}

/// Goroutine functions kept for tracks not yet described.
const MAX_FUNCTIONS_AHEAD: usize = 1 << 16;

impl PerfettoWriter {
    pub fn new(out: Box<dyn Write + Send>) -> PerfettoWriter {
        PerfettoWriter {
            out,
            process_uuid: 1,
            goroutines: HashMap::new(),
            counters: HashMap::new(),
            names: Interned::default(),
            arg_names: Interned::default(),
            started: false,
            buf: Vec::new(),
            lock_flows: 0,
            functions_ahead: HashMap::new(),
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
        if let Some(t) = self.goroutines.get(&goid) {
            return Ok(t.uuid);
        }
        let uuid = 2 << 32 | (self.goroutines.len() as u64 + 1);
        let function = self.functions_ahead.remove(&goid);
        self.describe_goroutine(goid, uuid, function.as_deref())?;
        self.goroutines
            .insert(goid, GoroutineTrack { uuid, function });
        Ok(uuid)
    }

    /// Goroutine `goid`'s first user function, read from outside the records: names its
    /// track now if it has one, else when it is first used.
    pub fn goroutine_function(&mut self, goid: u64, function: &str) -> std::io::Result<()> {
        if self.goroutines.contains_key(&goid) {
            return self.name_goroutine(goid, function);
        }
        // Most goroutines read get no track (they made no call): past the bound the
        // waiting names start afresh, and a track whose name was dropped stays unnamed.
        if self.functions_ahead.len() >= MAX_FUNCTIONS_AHEAD {
            self.functions_ahead.clear();
        }
        self.functions_ahead.insert(goid, function.to_owned());
        Ok(())
    }

    fn describe_goroutine(
        &mut self,
        goid: u64,
        uuid: u64,
        function: Option<&str>,
    ) -> std::io::Result<()> {
        let name = match function {
            Some(f) => format!("goroutine {goid}: {f}"),
            None => format!("goroutine {goid}"),
        };
        self.packet(TracePacket {
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(uuid),
                name: Some(name),
                parent_uuid: Some(self.process_uuid),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Names goroutine `goid`'s track by its first user function, once: Perfetto takes
    /// the last descriptor of a track, so the track is described again with the name.
    pub fn name_goroutine(&mut self, goid: u64, function: &str) -> std::io::Result<()> {
        let uuid = self.goroutine_track(goid)?;
        let track = self.goroutines.get_mut(&goid).expect("described above");
        if track.function.is_some() {
            return Ok(());
        }
        track.function = Some(function.to_owned());
        self.describe_goroutine(goid, uuid, Some(function))
    }

    /// The counter track named `name`, described the first time it is used.
    fn counter_track(&mut self, name: &str) -> std::io::Result<u64> {
        if let Some(&uuid) = self.counters.get(name) {
            return Ok(uuid);
        }
        let uuid = 5 << 32 | (self.counters.len() as u64 + 1);
        self.counters.insert(name.to_owned(), uuid);
        self.packet(TracePacket {
            track_descriptor: Some(TrackDescriptor {
                uuid: Some(uuid),
                name: Some(name.to_owned()),
                parent_uuid: Some(self.process_uuid),
                counter: Some(CounterDescriptor {
                    unit: Some(UNIT_COUNT),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })?;
        Ok(uuid)
    }

    fn counter(&mut self, track_name: &str, at_ns: u64, value: i64) -> std::io::Result<()> {
        let track = self.counter_track(track_name)?;
        self.packet(TracePacket {
            timestamp: Some(at_ns),
            track_event: Some(TrackEvent {
                r#type: Some(COUNTER),
                track_uuid: Some(track),
                counter_value: Some(value),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The references session `session` holds (taken minus released, as the model
    /// counts them; negative when it released refs taken before the tracer attached).
    pub fn refs_held(&mut self, session: &str, at_ns: u64, held: i64) -> std::io::Result<()> {
        self.counter(&format!("refs held: {session}"), at_ns, held)
    }

    /// The engine's cache entries (what `dagger_dagql_cache_entries` reports).
    pub fn cache_entries(&mut self, at_ns: u64, entries: u64) -> std::io::Result<()> {
        self.counter(
            CACHE_ENTRIES_TRACK,
            at_ns,
            i64::try_from(entries).unwrap_or(i64::MAX),
        )
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
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// Opens a slice named `name_iid` on `track` at `at_ns`, with the names interned for it.
    fn slice_begin(
        &mut self,
        track: u64,
        at_ns: u64,
        interned: Option<InternedData>,
        name_iid: u64,
        args: Vec<DebugAnnotation>,
        flow_ids: Vec<u64>,
    ) -> std::io::Result<()> {
        self.packet(TracePacket {
            timestamp: Some(at_ns),
            interned_data: interned,
            track_event: Some(TrackEvent {
                r#type: Some(SLICE_BEGIN),
                name_iid: Some(name_iid),
                track_uuid: Some(track),
                debug_annotations: args,
                flow_ids,
                ..Default::default()
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
        if let Some(f) = first_user_function(None, c.stack.iter().map(|f| f.func.as_str())) {
            self.name_goroutine(c.waiter, f)?;
        }
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
        self.slice_begin(
            track,
            c.start_ns,
            Some(interned),
            name_iid,
            args,
            Vec::new(),
        )?;
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
    /// threshold); the slice ends at `parked_end`. `g`: the goroutine as read, which
    /// names its track.
    pub fn parked_begin(
        &mut self,
        g: &Goroutine,
        since_ns: u64,
        wait_reason: Option<&str>,
        waiting_on: Option<u64>,
    ) -> std::io::Result<()> {
        let goid = g.goid;
        let track = self.goroutine_track(goid)?;
        let stack = g.stack.iter().map(|f| f.func.as_str());
        if let Some(f) = first_user_function(g.start_func.as_deref(), stack) {
            self.name_goroutine(goid, f)?;
        }
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
        self.slice_begin(track, since_ns, Some(interned), name_iid, args, Vec::new())
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
            ("digest", c.digest.as_deref().map(str::to_owned), None),
            ("session", c.session.as_deref().map(str::to_owned), None),
            (
                "hit_route",
                c.hit_route.map(|r| r.as_str().to_owned()),
                None,
            ),
            (
                "parent_digest",
                c.parent_digest.as_deref().map(str::to_owned),
                None,
            ),
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
                    ..Default::default()
                }),
                ..Default::default()
            });
        };
        self.slice_begin(track, start, interned_data, name_iid, args, flow_ids)?;
        self.slice_end(track, start + duration)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A goroutine's first user function: of its start function and its stack (innermost
/// first), the outermost function that is neither the runtime's own nor the wrapper Go
/// 1.21+ compiles `go f(x)` into (`pkg.caller.gowrapN`, which only calls `f`).
pub fn first_user_function<'a>(
    start_function: Option<&'a str>,
    stack: impl DoubleEndedIterator<Item = &'a str>,
) -> Option<&'a str> {
    let user = |f: &&str| {
        let last = f.rsplit('.').next().unwrap_or(f);
        !f.starts_with("runtime.") && !f.starts_with("runtime/") && !last.starts_with("gowrap")
    };
    start_function
        .filter(user)
        .or_else(|| stack.rev().find(user))
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

    /// The track names described, in the order written.
    fn track_names(bytes: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(bytes[at], TRACE_PACKET_KEY);
            let mut rest = &bytes[at + 1..];
            let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
            let start = bytes.len() - rest.len();
            let p = TracePacket::decode(&bytes[start..start + len]).unwrap();
            if let Some(name) = p.track_descriptor.and_then(|d| d.name) {
                names.push(name);
            }
            at = start + len;
        }
        names
    }

    #[test]
    fn goroutine_functions_name_tracks_before_and_after_they_exist() {
        let sink = crate::output::MemorySink::default();
        let mut w = PerfettoWriter::new(Box::new(sink.clone()));
        w.begin(42, "engine").unwrap();
        // Known before the goroutine's first slice: its track is described named.
        w.goroutine_function(7, "main.serve").unwrap();
        w.goroutine_track(7).unwrap();
        // Known after: the track is described again, named; a second name changes nothing.
        w.goroutine_track(9).unwrap();
        w.goroutine_function(9, "main.worker").unwrap();
        w.goroutine_function(9, "main.other").unwrap();
        assert_eq!(
            track_names(&sink.take()),
            [
                "goroutine 7: main.serve",
                "goroutine 9",
                "goroutine 9: main.worker"
            ]
        );
    }

    #[test]
    fn the_first_user_function_skips_the_runtime() {
        let stack = [
            "runtime.gopark",
            "sync.(*Mutex).Lock",
            "main.worker",
            "runtime.goexit",
        ];
        assert_eq!(
            first_user_function(Some("main.serve"), stack.into_iter()),
            Some("main.serve")
        );
        assert_eq!(
            first_user_function(Some("runtime.main"), stack.into_iter()),
            Some("main.worker")
        );
        assert_eq!(
            first_user_function(None, ["runtime.goexit"].into_iter()),
            None
        );
        let wrapped = [
            "runtime.gopark",
            "main.lockPair",
            "main.main.gowrap2",
            "runtime.goexit",
        ];
        assert_eq!(
            first_user_function(Some("main.main.gowrap2"), wrapped.into_iter()),
            Some("main.lockPair")
        );
    }
}
