//! `cargo run --release -p etchr-data --example gen_data -- --family all --n 20 --out /tmp/set`:
//! the same command `etchr gen-data` exposes, for use without the main binary.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: etchr_data::GenArgs,
}

fn main() -> anyhow::Result<()> {
    etchr_data::run_gen_data(Cli::parse().args)
}
