//! `tracer hang`: a live goroutine dump, blocked goroutines and deadlocks.
use clap::Args;

#[derive(Args, Debug)]
pub struct HangArgs {}

pub fn run(_args: HangArgs) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
