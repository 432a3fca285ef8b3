//! Two runs of the same repro, compared by identity flow: which digests each run asked the
//! cache for, and what each digest came to. What a digest came to is counted over the whole
//! run (executed once, reused three times, ...), so that scheduling (which session got
//! there first, a join instead of a hit) does not show as a divergence; a changed identity
//! (a new digest), an extra execution or a different route does.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The parts of a `cache_call` record a comparison reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct RunCall {
    pub digest: Option<String>,
    pub parent_digest: Option<String>,
    pub session: Option<String>,
    pub outcome: Option<String>,
    pub hit_route: Option<String>,
    pub returned_id_differs: Option<bool>,
    pub error: Option<String>,
    pub start_ns: Option<u64>,
    pub goid: u64,
    /// The call's identity parts, when the run had `--explain` (its field name).
    pub identity: Option<IdentityName>,
}

/// The part of `identity` a comparison reads.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct IdentityName {
    pub field: Option<String>,
}

impl RunCall {
    fn field(&self) -> Option<&str> {
        self.identity.as_ref()?.field.as_deref()
    }
}

/// What one digest's calls came to in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Signature {
    pub calls: u32,
    /// Computed by this call (`miss`).
    pub executed: u32,
    /// Answered without computing: `hit`, `hit_content`, `join`.
    pub reused: u32,
    pub uncached: u32,
    pub errors: u32,
    pub recursive: u32,
    /// Outcome unknown (e.g. light mode's calls that ended without a lookup).
    pub unknown: u32,
    /// `hit` and `hit_content` calls (not compared: a join in one run is a hit in the
    /// other when the executing call finished first).
    pub hits: u32,
    /// Hits by route (`recipe`, `digest`, `structural`, `content` for hit_content),
    /// compared when both runs hit the digest as often.
    pub routes: BTreeMap<String, u32>,
    /// Calls whose returned ID was not the requested one.
    pub returned_id_differs: u32,
}

/// Whether two outcomes mean the same thing for the identity flow.
fn class(outcome: Option<&str>) -> &'static str {
    match outcome {
        Some("miss") => "executed",
        Some("hit" | "hit_content" | "join") => "reused",
        Some("uncached") => "uncached",
        Some("error") => "error",
        Some("recursive") => "recursive",
        _ => "unknown",
    }
}

impl Signature {
    fn add(&mut self, c: &RunCall) {
        self.calls += 1;
        match class(c.outcome.as_deref()) {
            "executed" => self.executed += 1,
            "reused" => self.reused += 1,
            "uncached" => self.uncached += 1,
            "error" => self.errors += 1,
            "recursive" => self.recursive += 1,
            _ => self.unknown += 1,
        }
        let route = match c.outcome.as_deref() {
            Some("hit_content") => Some("content"),
            Some("hit") => c.hit_route.as_deref(),
            _ => None,
        };
        if matches!(c.outcome.as_deref(), Some("hit" | "hit_content")) {
            self.hits += 1;
        }
        if let Some(r) = route {
            *self.routes.entry(r.to_string()).or_default() += 1;
        }
        if c.returned_id_differs == Some(true) {
            self.returned_id_differs += 1;
        }
    }

    /// The names of the counts that differ.
    fn differences(&self, other: &Signature) -> Vec<&'static str> {
        let mut d = Vec::new();
        let pairs = [
            ("calls", self.calls, other.calls),
            ("executed", self.executed, other.executed),
            ("reused", self.reused, other.reused),
            ("uncached", self.uncached, other.uncached),
            ("errors", self.errors, other.errors),
            ("recursive", self.recursive, other.recursive),
            (
                "returned_id_differs",
                self.returned_id_differs,
                other.returned_id_differs,
            ),
        ];
        for (name, a, b) in pairs {
            if a != b {
                d.push(name);
            }
        }
        if self.hits == other.hits && self.routes != other.routes {
            d.push("hit_route");
        }
        d
    }

    fn same_flow(&self, other: &Signature) -> bool {
        self.differences(other).is_empty()
    }
}

/// One run: its calls in start order, and what each digest came to.
pub struct Run {
    pub calls: Vec<RunCall>,
    signatures: HashMap<String, Signature>,
    /// Index of each digest's calls, in start order.
    by_digest: HashMap<String, Vec<usize>>,
    /// Sessions in the order their first call started.
    session_order: HashMap<String, usize>,
    first_ns: u64,
}

impl Run {
    pub fn new(mut calls: Vec<RunCall>) -> Run {
        calls.sort_by_key(|c| c.start_ns.unwrap_or(u64::MAX));
        let mut signatures: HashMap<String, Signature> = HashMap::new();
        let mut by_digest: HashMap<String, Vec<usize>> = HashMap::new();
        let mut session_order = HashMap::new();
        for (i, c) in calls.iter().enumerate() {
            if let Some(d) = &c.digest {
                signatures.entry(d.clone()).or_default().add(c);
                by_digest.entry(d.clone()).or_default().push(i);
            }
            if let Some(s) = &c.session {
                let next = session_order.len();
                session_order.entry(s.clone()).or_insert(next);
            }
        }
        let first_ns = calls.iter().filter_map(|c| c.start_ns).min().unwrap_or(0);
        Run {
            calls,
            signatures,
            by_digest,
            session_order,
            first_ns,
        }
    }

    fn since_start(&self, i: usize) -> u64 {
        self.calls[i]
            .start_ns
            .map_or(u64::MAX, |t| t.saturating_sub(self.first_ns))
    }

    /// Digests from the call up to the root, through each parent's first call.
    pub fn parent_chain(&self, i: usize) -> Vec<String> {
        let mut chain = Vec::new();
        let mut at = self.calls[i].parent_digest.clone();
        while let Some(d) = at {
            if chain.contains(&d) || chain.len() >= 64 {
                break;
            }
            at = self
                .by_digest
                .get(&d)
                .and_then(|calls| calls.first())
                .and_then(|&p| self.calls[p].parent_digest.clone());
            chain.push(d);
        }
        chain
    }

    fn session_rank(&self, i: usize) -> Option<usize> {
        self.calls[i]
            .session
            .as_ref()
            .and_then(|s| self.session_order.get(s).copied())
    }

    /// The call's place among the calls of the same session and parent (sibling order).
    fn sibling_index(&self, i: usize) -> usize {
        let c = &self.calls[i];
        self.calls[..i]
            .iter()
            .filter(|o| o.session == c.session && o.parent_digest == c.parent_digest)
            .count()
    }
}

/// What a diverging call is, on one side.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// Position in its run's start order (0-based) and time since the run's first call.
    pub index: usize,
    pub since_start_ns: u64,
    /// The session's order of appearance in its run (0-based).
    pub session_rank: Option<usize>,
    pub call: RunCall,
    pub signature: Option<Signature>,
    pub parent_chain: Vec<String>,
}

/// The first call at which the runs' identity flows part.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub a: Option<Side>,
    pub b: Option<Side>,
    /// What differs: `digest`, or the signature counts that differ, or `only_in_a`/`only_in_b`.
    pub differs: Vec<&'static str>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DiffSummary {
    pub calls: (usize, usize),
    pub digests_only_in_a: usize,
    pub digests_only_in_b: usize,
    pub digests_differing: usize,
    /// Calls per outcome in A and in B.
    pub outcomes: BTreeMap<String, (u32, u32)>,
    /// How many common digests differ in each count.
    pub differing_counts: BTreeMap<&'static str, usize>,
    /// Per call name (runs recorded with `--explain`): calls in A and B, and digests
    /// only in A, only in B, or in both with different counts.
    pub by_field: BTreeMap<String, FieldDiff>,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FieldDiff {
    pub calls: (u32, u32),
    pub only_in_a: u32,
    pub only_in_b: u32,
    pub differing: u32,
}

pub struct Comparison {
    pub first: Option<Divergence>,
    pub summary: DiffSummary,
}

pub fn compare(a: &Run, b: &Run) -> Comparison {
    let mut summary = DiffSummary {
        calls: (a.calls.len(), b.calls.len()),
        ..Default::default()
    };
    for (run, pick) in [(a, 0), (b, 1)] {
        for c in &run.calls {
            let key = c.outcome.clone().unwrap_or_else(|| "unknown".into());
            let e = summary.outcomes.entry(key).or_default();
            if pick == 0 {
                e.0 += 1
            } else {
                e.1 += 1
            }
            if let Some(f) = c.field() {
                let e = summary.by_field.entry(f.to_string()).or_default();
                if pick == 0 {
                    e.calls.0 += 1
                } else {
                    e.calls.1 += 1
                }
            }
        }
    }
    let field_of = |run: &Run, digest: &String| -> Option<String> {
        run.by_digest[digest]
            .iter()
            .find_map(|&i| run.calls[i].field().map(str::to_string))
    };
    // Candidates for the first divergence: (time since start, side, call index, what).
    let mut candidates: Vec<(u64, u8, usize, Vec<&'static str>)> = Vec::new();
    for (digest, sig_a) in &a.signatures {
        let first_a = a.by_digest[digest][0];
        match b.signatures.get(digest) {
            None => {
                summary.digests_only_in_a += 1;
                if let Some(f) = field_of(a, digest) {
                    summary.by_field.entry(f).or_default().only_in_a += 1;
                }
                candidates.push((a.since_start(first_a), 0, first_a, vec!["only_in_a"]));
            }
            Some(sig_b) if !sig_a.same_flow(sig_b) => {
                summary.digests_differing += 1;
                if let Some(f) = field_of(a, digest) {
                    summary.by_field.entry(f).or_default().differing += 1;
                }
                let what = sig_a.differences(sig_b);
                for w in &what {
                    *summary.differing_counts.entry(w).or_default() += 1;
                }
                // The digest's first call in A that B has no call like (same class, and
                // same route when routes are what differs).
                let by_route = what.contains(&"hit_route");
                let key = |c: &RunCall| {
                    let route = by_route.then(|| c.hit_route.clone()).flatten();
                    (class(c.outcome.as_deref()), route)
                };
                let mut left: HashMap<_, u32> = HashMap::new();
                for &j in &b.by_digest[digest] {
                    *left.entry(key(&b.calls[j])).or_default() += 1;
                }
                let at = a.by_digest[digest]
                    .iter()
                    .copied()
                    .find(|&i| match left.get_mut(&key(&a.calls[i])) {
                        Some(n) if *n > 0 => {
                            *n -= 1;
                            false
                        }
                        _ => true,
                    })
                    .unwrap_or(first_a);
                candidates.push((a.since_start(at), 0, at, what));
            }
            Some(_) => {}
        }
    }
    for digest in b.signatures.keys() {
        if !a.signatures.contains_key(digest) {
            summary.digests_only_in_b += 1;
            if let Some(f) = field_of(b, digest) {
                summary.by_field.entry(f).or_default().only_in_b += 1;
            }
            let first_b = b.by_digest[digest][0];
            candidates.push((b.since_start(first_b), 1, first_b, vec!["only_in_b"]));
        }
    }
    // A's side first at equal times, so a changed call is reported from A with its B
    // counterpart.
    candidates.sort_by_key(|(t, side, i, _)| (*t, *side, *i));
    let first = candidates.into_iter().next().map(|(_, side, i, what)| {
        let (this, other) = if side == 0 { (a, b) } else { (b, a) };
        let counterpart = match what.first() {
            Some(&"only_in_a") | Some(&"only_in_b") => changed_counterpart(this, other, i),
            _ => this.calls[i]
                .digest
                .as_ref()
                .and_then(|d| other.by_digest.get(d))
                .and_then(|calls| {
                    let k = this.by_digest[this.calls[i].digest.as_ref().unwrap()]
                        .iter()
                        .position(|&x| x == i)
                        .unwrap_or(0);
                    calls.get(k).or(calls.last()).copied()
                }),
        };
        let mut differs = what;
        if counterpart.is_some() && matches!(differs.first(), Some(&"only_in_a" | &"only_in_b")) {
            differs = vec!["digest"];
        }
        let this_side = side_of(this, i);
        let other_side = counterpart.map(|j| side_of(other, j));
        let (sa, sb) = if side == 0 {
            (Some(this_side), other_side)
        } else {
            (other_side, Some(this_side))
        };
        Divergence {
            a: sa,
            b: sb,
            differs,
        }
    });
    Comparison { first, summary }
}

fn side_of(run: &Run, i: usize) -> Side {
    let call = run.calls[i].clone();
    Side {
        index: i,
        since_start_ns: run.since_start(i),
        session_rank: run.session_rank(i),
        signature: call
            .digest
            .as_ref()
            .and_then(|d| run.signatures.get(d).cloned()),
        parent_chain: run.parent_chain(i),
        call,
    }
}

/// For a call whose digest the other run never asked for: the other run's call in the
/// same place (same session rank, same parent, nearest sibling position) whose digest
/// this run never asked for, i.e. the same call with a changed identity.
fn changed_counterpart(this: &Run, other: &Run, i: usize) -> Option<usize> {
    let c = &this.calls[i];
    let rank = this.session_rank(i);
    let sibling = this.sibling_index(i);
    other
        .calls
        .iter()
        .enumerate()
        .filter(|(j, o)| {
            o.digest
                .as_ref()
                .is_some_and(|d| !this.signatures.contains_key(d))
                && o.parent_digest == c.parent_digest
                && other.session_rank(*j) == rank
        })
        .min_by_key(|(j, _)| other.sibling_index(*j).abs_diff(sibling))
        .map(|(j, _)| j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(digest: &str, parent: Option<&str>, session: &str, outcome: &str, t: u64) -> RunCall {
        RunCall {
            digest: Some(digest.into()),
            parent_digest: parent.map(Into::into),
            session: Some(session.into()),
            outcome: Some(outcome.into()),
            hit_route: (outcome == "hit").then(|| "recipe".into()),
            start_ns: Some(t),
            ..Default::default()
        }
    }

    #[test]
    fn scheduling_is_not_a_divergence() {
        // A: s1 misses x, s2 joins it. B: s2 misses x, s1 hits it later.
        let a = Run::new(vec![
            call("x", None, "s1", "miss", 10),
            call("x", None, "s2", "join", 11),
        ]);
        let mut hit = call("x", None, "s1", "hit", 30);
        hit.hit_route = Some("recipe".into());
        let b = Run::new(vec![call("x", None, "s2", "miss", 100), hit]);
        // A join and a hit are both reuse.
        assert!(compare(&a, &b).first.is_none());
        // As many hits by another route is a divergence.
        let mut a2 = a.calls.clone();
        a2[1].outcome = Some("hit".into());
        a2[1].hit_route = Some("digest".into());
        let first = compare(&Run::new(a2), &b).first.expect("routes differ");
        assert_eq!(first.differs, vec!["hit_route"]);
        assert_eq!(first.a.unwrap().index, 1);
    }

    #[test]
    fn a_changed_argument_is_found_with_its_counterpart() {
        let a = Run::new(vec![
            call("root", None, "s", "miss", 1),
            call("p1", Some("root"), "s", "miss", 2),
            call("p2", Some("root"), "s", "miss", 3),
            call("child", Some("p2"), "s", "miss", 4),
        ]);
        let b = Run::new(vec![
            call("root", None, "s", "miss", 101),
            call("p1", Some("root"), "s", "miss", 102),
            call("p2x", Some("root"), "s", "miss", 103),
            call("childx", Some("p2x"), "s", "miss", 104),
        ]);
        let cmp = compare(&a, &b);
        let first = cmp.first.unwrap();
        assert_eq!(first.differs, vec!["digest"]);
        assert_eq!(first.a.as_ref().unwrap().call.digest.as_deref(), Some("p2"));
        assert_eq!(
            first.b.as_ref().unwrap().call.digest.as_deref(),
            Some("p2x")
        );
        assert_eq!(first.a.unwrap().parent_chain, vec!["root".to_string()]);
        assert_eq!(cmp.summary.digests_only_in_a, 2);
        assert_eq!(cmp.summary.digests_only_in_b, 2);
    }

    #[test]
    fn an_extra_execution_is_a_divergence() {
        let a = Run::new(vec![
            call("x", None, "s", "miss", 1),
            call("x", None, "s", "hit", 2),
        ]);
        let b = Run::new(vec![
            call("x", None, "s", "miss", 1),
            call("x", None, "s", "miss", 2),
        ]);
        let first = compare(&a, &b).first.unwrap();
        assert_eq!(first.a.as_ref().unwrap().index, 1, "the second call");
        assert!(first.differs.contains(&"executed"));
    }
}
