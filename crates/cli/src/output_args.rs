//! The output file flags shared by `bolt compact` and `rewrite`: page size,
//! fill, trailer.

use anyhow::{bail, Result};
use clap::Args;
use etcdsnap_mvcc::snapshot::TrailerMode;

/// `--page-size`, `--fill-percent`, `--trailer`, `--no-trailer`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Page size of the output in bytes: a power of two from 1024 to 65536 [default: the input's].
    #[arg(long)]
    page_size: Option<u32>,
    /// Fraction of each page to fill, 0.1 to 1.0 (etcd defrag uses 0.9, bbolt compact 1.0).
    #[arg(long, default_value_t = etcdsnap_bolt::builder::DEFAULT_FILL_PERCENT)]
    fill_percent: f64,
    /// Append a SHA-256 trailer even if the input has none.
    #[arg(long, conflicts_with = "no_trailer")]
    trailer: bool,
    /// Write no SHA-256 trailer even if the input has one (restore then needs --skip-hash-check).
    #[arg(long)]
    no_trailer: bool,
}

/// Checked output file options.
#[derive(Debug, Clone, Copy)]
pub struct OutputFile {
    pub page_size: Option<u32>,
    pub fill_percent: f64,
    pub trailer: TrailerMode,
}

impl OutputArgs {
    /// The options, with their ranges checked.
    pub fn checked(&self) -> Result<OutputFile> {
        if !(0.1..=1.0).contains(&self.fill_percent) {
            bail!("--fill-percent must be between 0.1 and 1.0, got {}", self.fill_percent);
        }
        if let Some(ps) = self.page_size.filter(|ps| !etcdsnap_bolt::layout::valid_page_size(*ps)) {
            bail!(
                "--page-size must be a power of two from 1024 to 65536 (1024, 2048, 4096, …, 65536), as bbolt's \
                 pages are; other sizes break the snapshot trailer rule (file size % 512 == 32), got {ps}"
            );
        }
        Ok(OutputFile {
            page_size: self.page_size,
            fill_percent: self.fill_percent,
            trailer: TrailerMode::from_flags(self.trailer, self.no_trailer),
        })
    }
}
