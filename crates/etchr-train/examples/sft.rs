//! Runs Stage 1 training until `etchr train sft` is wired into the binary:
//! `cargo run --release -p etchr-train --example sft -- --out runs/sft1 [--resume] …`.

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sft: etchr_train::SftArgs,
}

fn main() -> anyhow::Result<()> {
    etchr_train::run_sft(Cli::parse().sft)
}
