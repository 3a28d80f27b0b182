//! `--output`: text for people or JSON for pipelines, the same choice in every subcommand.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}
