//! A map with a size bound that evicts its least recently used entry: the models' state
//! that lives as long as the tracer stays attached uses it, so hours of tracing cannot
//! grow memory, and the caller counts what it evicts.
use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
};

pub struct LruMap<K, V> {
    cap: usize,
    /// Entry and its use stamp (its key in `order`).
    map: HashMap<K, (V, u64)>,
    /// Use stamp -> key, oldest first.
    order: BTreeMap<u64, K>,
    next: u64,
}

impl<K: Hash + Eq + Clone, V> LruMap<K, V> {
    pub fn new(cap: usize) -> LruMap<K, V> {
        assert!(cap > 0, "an LruMap holds at least one entry");
        LruMap {
            cap,
            map: HashMap::new(),
            order: BTreeMap::new(),
            next: 0,
        }
    }

    fn stamp(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Inserts (or replaces) `k` as the most recently used; returns the entry evicted to
    /// make room, if any.
    pub fn insert(&mut self, k: K, v: V) -> Option<(K, V)> {
        let stamp = self.stamp();
        if let Some((old_v, old_stamp)) = self.map.get_mut(&k) {
            self.order.remove(old_stamp);
            *old_v = v;
            *old_stamp = stamp;
            self.order.insert(stamp, k);
            return None;
        }
        let evicted = if self.map.len() >= self.cap {
            self.pop_oldest()
        } else {
            None
        };
        self.order.insert(stamp, k.clone());
        self.map.insert(k, (v, stamp));
        evicted
    }

    /// `k`'s value, marked most recently used, inserted from `make` if absent; with the
    /// entry evicted to make room, if any.
    pub fn touch_or_insert_with(
        &mut self,
        k: K,
        make: impl FnOnce() -> V,
    ) -> (&mut V, Option<(K, V)>) {
        let evicted = if self.map.contains_key(&k) {
            self.touch(&k);
            None
        } else {
            self.insert(k.clone(), make())
        };
        let v = &mut self.map.get_mut(&k).expect("just inserted").0;
        (v, evicted)
    }

    /// Marks `k` most recently used.
    pub fn touch(&mut self, k: &K) {
        let stamp = self.stamp();
        if let Some((_, s)) = self.map.get_mut(k) {
            let key = self.order.remove(s).expect("stamp in order");
            *s = stamp;
            self.order.insert(stamp, key);
        }
    }

    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, k) = self.order.pop_first()?;
        let (v, _) = self.map.remove(&k).expect("ordered key in map");
        Some((k, v))
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|(v, _)| v)
    }

    /// Without marking it used.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k).map(|(v, _)| v)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let (v, s) = self.map.remove(k)?;
        self.order.remove(&s);
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (v, _))| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.map.values_mut().map(|(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used() {
        let mut m = LruMap::new(2);
        assert!(m.insert(1, "a").is_none());
        assert!(m.insert(2, "b").is_none());
        m.touch(&1);
        assert_eq!(m.insert(3, "c"), Some((2, "b")));
        // Replacing an entry evicts nothing and makes it the newest.
        assert!(m.insert(1, "A").is_none());
        let (v, evicted) = m.touch_or_insert_with(4, || "d");
        assert_eq!((*v, evicted), ("d", Some((3, "c"))));
        assert_eq!(m.remove(&1), Some("A"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.pop_oldest(), Some((4, "d")));
        assert!(m.is_empty());
    }
}
