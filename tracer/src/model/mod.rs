//! Reconstruction: turning raw probe hits into meaning. Pure functions over event
//! streams, so they are tested without a kernel.
pub mod bounded;
pub mod cache;
pub mod cache_events;
pub mod cache_facts;
pub mod calls;
pub mod diff;
pub mod explain;
pub mod goroutines;
pub mod latency;
pub mod locks;
pub mod summary;
pub mod watch;
pub mod watch_facts;
