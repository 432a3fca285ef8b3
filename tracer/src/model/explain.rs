//! Why a miss missed (`tracer cache --explain`): the identity parts the engine's own
//! checklist names, read at the call's lookup, compared with the most similar earlier
//! call of the same field. Only what was read is compared; what could not be read is
//! said, never guessed.
use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// The parts of a call's identity read at its lookup (first two arguments and
/// structural inputs; the counts say how many there are).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CallIdentity {
    pub field: Option<String>,
    /// The term's self digest: field, literal arguments, view, nth.
    pub self_digest: Option<String>,
    pub input_count: Option<u64>,
    /// Structural input digests in the engine's order: receiver (when the call has one),
    /// ID-valued arguments, implicit inputs, module.
    pub inputs: Vec<Option<String>>,
    pub arg_count: Option<u64>,
    pub args: Vec<ArgPart>,
}

/// One argument as read: a sensitive one's value is never read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ArgPart {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub value: Option<String>,
    pub sensitive: bool,
}

impl CallIdentity {
    /// Adds what another probe of the same lookup read.
    pub fn merge(&mut self, other: CallIdentity) {
        self.field = self.field.take().or(other.field);
        self.self_digest = self.self_digest.take().or(other.self_digest);
        self.input_count = self.input_count.or(other.input_count);
        self.arg_count = self.arg_count.or(other.arg_count);
        for (i, d) in other.inputs.into_iter().enumerate() {
            if d.is_some() {
                set(&mut self.inputs, i, d);
            }
        }
        for (i, a) in other.args.into_iter().enumerate() {
            if self.args.len() <= i {
                self.args.resize_with(i + 1, ArgPart::default);
            }
            let known = &mut self.args[i];
            known.name = known.name.take().or(a.name);
            known.kind = known.kind.take().or(a.kind);
            known.value = known.value.take().or(a.value);
            known.sensitive |= a.sensitive;
        }
    }

    /// Drops what lies past the counts (read from memory the call does not own).
    pub fn trimmed(mut self) -> CallIdentity {
        if let Some(n) = self.input_count {
            self.inputs.truncate(n as usize);
        }
        if let Some(n) = self.arg_count {
            self.args.truncate(n as usize);
        }
        self
    }
}

fn set<T: Default>(v: &mut Vec<T>, i: usize, x: T) {
    if v.len() <= i {
        v.resize_with(i + 1, T::default);
    }
    v[i] = x;
}

/// One part that differs: what it was in the earlier call and what it is now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `arg <name>`, `arg <n>`, `argument count`, `self digest`, `input <n>`,
    /// `input count`, `do_not_cache`, `new field`, `same identity`, `not read`.
    pub part: String,
    pub was: Option<String>,
    pub now: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The earlier call compared with: its recipe digest.
    pub compared_with: Option<String>,
    pub differs: Vec<Difference>,
}

fn part(part: impl Into<String>, was: Option<String>, now: Option<String>) -> Difference {
    Difference {
        part: part.into(),
        was,
        now,
    }
}

/// Earlier calls kept per field, and fields kept (oldest forgotten first).
const PER_FIELD: usize = 32;
const MAX_FIELDS: usize = 4096;

#[derive(Default)]
pub struct Explainer {
    by_field: HashMap<String, VecDeque<(Option<String>, CallIdentity)>>,
    fields: VecDeque<String>,
    /// Fields forgotten to stay within the bound.
    pub evicted_fields: u64,
}

impl Explainer {
    /// Explains a miss (`miss`) or an uncached call, then remembers the call.
    pub fn explain(
        &mut self,
        digest: Option<&str>,
        identity: Option<&CallIdentity>,
        missed: bool,
        uncached: bool,
    ) -> Option<Explanation> {
        let explanation = if uncached {
            Some(Explanation {
                compared_with: None,
                differs: vec![part("do_not_cache", None, None)],
            })
        } else if missed {
            Some(match identity {
                Some(id) => self.compare(digest, id),
                None => Explanation {
                    compared_with: None,
                    differs: vec![part("not read", None, None)],
                },
            })
        } else {
            None
        };
        if let Some(id) = identity {
            self.remember(digest, id);
        }
        explanation
    }

    fn compare(&self, digest: Option<&str>, id: &CallIdentity) -> Explanation {
        let earlier = id.field.as_ref().and_then(|f| self.by_field.get(f));
        let Some(earlier) = earlier.filter(|e| !e.is_empty()) else {
            return Explanation {
                compared_with: None,
                differs: vec![part("new field", None, id.field.clone())],
            };
        };
        // The most similar earlier call; the latest among equals.
        let (old_digest, old, diffs) = earlier
            .iter()
            .rev()
            .map(|(d, old)| (d, old, differences(old, id)))
            .min_by_key(|(_, _, diffs)| diffs.len())
            .expect("not empty");
        let differs = if old_digest.is_some() && old_digest.as_deref() == digest {
            vec![part(
                "same identity",
                None,
                Some("its earlier result was no longer in the cache (released, collected or expired)".into()),
            )]
        } else if diffs.is_empty() {
            // Nothing read differs, yet the digest does: a part not read here.
            vec![part(
                "self digest",
                old.self_digest.clone(),
                id.self_digest.clone(),
            )]
        } else {
            diffs
        };
        Explanation {
            compared_with: old_digest.clone(),
            differs,
        }
    }

    fn remember(&mut self, digest: Option<&str>, id: &CallIdentity) {
        let Some(field) = id.field.clone() else {
            return;
        };
        if !self.by_field.contains_key(&field) {
            if self.fields.len() >= MAX_FIELDS
                && let Some(old) = self.fields.pop_front()
            {
                self.by_field.remove(&old);
                self.evicted_fields += 1;
            }
            self.fields.push_back(field.clone());
        }
        let calls = self.by_field.entry(field).or_default();
        if calls.len() >= PER_FIELD {
            calls.pop_front();
        }
        calls.push_back((digest.map(str::to_string), id.clone()));
    }
}

/// The parts that differ between an earlier call and this one, as far as both were read.
fn differences(old: &CallIdentity, new: &CallIdentity) -> Vec<Difference> {
    let mut d = Vec::new();
    let known_differ =
        |a: &Option<String>, b: &Option<String>| a.is_some() && b.is_some() && a != b;
    if known_differ(&old.self_digest, &new.self_digest) {
        let before = d.len();
        if old.arg_count.is_some() && new.arg_count.is_some() && old.arg_count != new.arg_count {
            d.push(part(
                "argument count",
                old.arg_count.map(|n| n.to_string()),
                new.arg_count.map(|n| n.to_string()),
            ));
        }
        for (i, (a, b)) in old.args.iter().zip(&new.args).enumerate() {
            if a.name != b.name {
                d.push(part(format!("arg {i}"), a.name.clone(), b.name.clone()));
            } else if a.sensitive || b.sensitive {
                // A secret's value is never read: it may be what differs.
                if a.sensitive != b.sensitive {
                    d.push(part(format!("arg {}", name_of(a, i)), shown(a), shown(b)));
                }
            } else if a.kind != b.kind || a.value != b.value {
                d.push(part(format!("arg {}", name_of(a, i)), shown(a), shown(b)));
            }
        }
        if d.len() == before {
            d.push(part(
                "self digest",
                old.self_digest.clone(),
                new.self_digest.clone(),
            ));
        }
    }
    if old.input_count.is_some() && new.input_count.is_some() && old.input_count != new.input_count
    {
        d.push(part(
            "input count",
            old.input_count.map(|n| n.to_string()),
            new.input_count.map(|n| n.to_string()),
        ));
    }
    for (i, (a, b)) in old.inputs.iter().zip(&new.inputs).enumerate() {
        if known_differ(a, b) {
            d.push(part(format!("input {i}"), a.clone(), b.clone()));
        }
    }
    d
}

fn name_of(a: &ArgPart, i: usize) -> String {
    a.name.clone().unwrap_or_else(|| i.to_string())
}

/// An argument's value as shown: a sensitive one as `(sensitive)`.
fn shown(a: &ArgPart) -> Option<String> {
    if a.sensitive {
        return Some("(sensitive)".into());
    }
    match (&a.kind, &a.value) {
        (Some(k), Some(v)) if k == "string" => Some(format!("{v:?}")),
        (Some(k), Some(v)) if v.is_empty() => Some(format!("({k})")),
        (_, Some(v)) => Some(v.clone()),
        (Some(k), None) => Some(format!("({k})")),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(field: &str, self_d: &str, inputs: &[&str], args: &[(&str, &str)]) -> CallIdentity {
        CallIdentity {
            field: Some(field.into()),
            self_digest: Some(self_d.into()),
            input_count: Some(inputs.len() as u64),
            inputs: inputs.iter().map(|s| Some(s.to_string())).collect(),
            arg_count: Some(args.len() as u64),
            args: args
                .iter()
                .map(|(n, v)| ArgPart {
                    name: Some(n.to_string()),
                    kind: Some("string".into()),
                    value: Some(v.to_string()),
                    sensitive: false,
                })
                .collect(),
        }
    }

    fn explain(e: &mut Explainer, digest: &str, id: &CallIdentity) -> Explanation {
        e.explain(Some(digest), Some(id), true, false).unwrap()
    }

    #[test]
    fn each_part_is_found() {
        let mut e = Explainer::default();
        let first = explain(&mut e, "d1", &id("build", "s1", &[], &[("source", "a")]));
        assert_eq!(first.differs[0].part, "new field");
        let changed = explain(&mut e, "d2", &id("build", "s2", &[], &[("source", "b")]));
        assert_eq!(changed.compared_with.as_deref(), Some("d1"));
        assert_eq!(
            changed.differs,
            vec![part(
                "arg source",
                Some("\"a\"".into()),
                Some("\"b\"".into())
            )]
        );
        explain(&mut e, "d3", &id("sub", "x", &["r1"], &[("n", "1")]));
        let recv = explain(&mut e, "d4", &id("sub", "x", &["r2"], &[("n", "1")]));
        assert_eq!(
            recv.differs,
            vec![part("input 0", Some("r1".into()), Some("r2".into()))]
        );
        let again = explain(&mut e, "d4", &id("sub", "x", &["r2"], &[("n", "1")]));
        assert_eq!(again.differs[0].part, "same identity");
        let uncached = e.explain(None, None, false, true).unwrap();
        assert_eq!(uncached.differs[0].part, "do_not_cache");
    }

    #[test]
    fn a_sensitive_value_is_never_compared_or_shown() {
        let mut e = Explainer::default();
        let mut a = id("login", "s1", &[], &[("user", "ann"), ("token", "")]);
        a.args[1] = ArgPart {
            name: Some("token".into()),
            kind: None,
            value: None,
            sensitive: true,
        };
        explain(&mut e, "d1", &a);
        let mut b = a.clone();
        b.self_digest = Some("s2".into());
        let x = explain(&mut e, "d2", &b);
        // Only the secret can differ: said as the self digest, no value shown.
        assert_eq!(x.differs[0].part, "self digest");
    }

    #[test]
    fn memory_is_bounded() {
        let mut e = Explainer::default();
        for i in 0..(MAX_FIELDS + 10) {
            let f = format!("f{i}");
            for k in 0..(PER_FIELD + 3) {
                e.remember(Some(&format!("d{k}")), &id(&f, "s", &[], &[]));
            }
        }
        assert_eq!(e.by_field.len(), MAX_FIELDS);
        assert_eq!(e.evicted_fields, 10);
        assert!(e.by_field.values().all(|v| v.len() == PER_FIELD));
    }
}
