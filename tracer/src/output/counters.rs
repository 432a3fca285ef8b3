//! The counter tracks of a `tracer cache` timeline: the references each session holds
//! (the model's `refs_taken - refs_released`) and the engine's cache entries (what
//! `dagger_dagql_cache_entries` reports). A value is written only when it changes.
use std::collections::HashMap;

use super::perfetto::PerfettoWriter;
use crate::model::{
    cache::CacheModel,
    cache_events::{CacheEvent, OwnerContext, SessionKey},
};

/// Last values written; past this many sessions, those no longer live are forgotten (a
/// forgotten session that comes back has its value written again).
const MAX_SESSIONS_KEPT: usize = 4096;
/// The engine's cache entries are read from its memory at most this often (a read is a
/// few system calls; the event loop turns far more often under load).
const ENTRIES_EVERY_NS: u64 = 50_000_000;

#[derive(Default)]
pub struct CacheCounters {
    /// Refs held per session track, as last written.
    held: HashMap<String, i64>,
    entries: Option<u64>,
    /// When the engine's memory was last read for the entries.
    entries_read_ns: Option<u64>,
}

/// Whether `ev` can change a session's reference counts in the model.
pub fn changes_refs(ev: &CacheEvent) -> bool {
    match ev {
        CacheEvent::CallEnded { ref_taken, .. } => *ref_taken,
        CacheEvent::RefReleased { session, .. } => session.is_some(),
        CacheEvent::Ownership { context, .. } => matches!(
            context,
            OwnerContext::SessionTracked(_) | OwnerContext::SessionReleased(_)
        ),
        // A session named now gets its track under its name.
        CacheEvent::SessionOpened { .. } => true,
        _ => false,
    }
}

/// The name a session's track has: its id, or the handle the engine knows it by until
/// its id is seen.
fn label(key: &SessionKey, id: Option<&str>) -> String {
    match (id, key) {
        (Some(id), _) => id.to_owned(),
        (None, SessionKey::Id(id)) => id.to_string(),
        (None, SessionKey::Handle(h)) => format!("handle {h:#x}"),
    }
}

impl CacheCounters {
    /// After a probe hit at `at_ns` that `changes_refs`: the refs held by each live session
    /// whose count moved.
    pub fn sessions(
        &mut self,
        p: &mut PerfettoWriter,
        model: &CacheModel,
        at_ns: u64,
    ) -> std::io::Result<()> {
        for (key, s) in &model.sessions {
            let held = s.refs_taken as i64 - s.refs_released as i64;
            // Looked up without building the label: this runs at every ref change, over
            // every live session.
            let last = match (s.id.as_deref(), key) {
                (Some(id), _) => self.held.get(id),
                (None, SessionKey::Id(id)) => self.held.get(&**id),
                (None, SessionKey::Handle(_)) => self.held.get(&label(key, None)),
            }
            .copied();
            // A session that never took or released a ref has no track.
            if last == Some(held) || (last.is_none() && s.refs_taken + s.refs_released == 0) {
                continue;
            }
            let label = label(key, s.id.as_deref());
            p.refs_held(&label, at_ns, held)?;
            self.held.insert(label, held);
        }
        if self.held.len() > MAX_SESSIONS_KEPT {
            let live: std::collections::HashSet<String> = model
                .sessions
                .iter()
                .map(|(k, s)| label(k, s.id.as_deref()))
                .collect();
            self.held.retain(|l, _| live.contains(l));
        }
        Ok(())
    }

    /// A session closed with these final counts (its release may have moved them after
    /// the last look).
    pub fn session_closed(
        &mut self,
        p: &mut PerfettoWriter,
        session: &str,
        held: i64,
        at_ns: u64,
    ) -> std::io::Result<()> {
        let last = self.held.remove(session);
        if last != Some(held) && (last.is_some() || held != 0) {
            p.refs_held(session, at_ns, held)?;
        }
        Ok(())
    }

    /// Whether the entries are due for another read at `now_ns` (then it counts as read).
    pub fn entries_due(&mut self, now_ns: u64) -> bool {
        let due = self
            .entries_read_ns
            .is_none_or(|t| now_ns >= t + ENTRIES_EVERY_NS);
        if due {
            self.entries_read_ns = Some(now_ns);
        }
        due
    }

    /// The engine's cache entries, read at `at_ns`.
    pub fn entries(
        &mut self,
        p: &mut PerfettoWriter,
        at_ns: u64,
        entries: u64,
    ) -> std::io::Result<()> {
        if self.entries != Some(entries) {
            p.cache_entries(at_ns, entries)?;
            self.entries = Some(entries);
        }
        Ok(())
    }
}
