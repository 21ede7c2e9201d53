//! Copying a whole database through the builder: an offline `bbolt compact`.

use std::io::{Seek, Write};

use crate::builder::{BuildOptions, BuildSummary, Builder};
use crate::db::Db;
use crate::error::Result;
use crate::layout::BucketHeader;
use crate::walk::{walk, Visitor};

struct Copier<'b, W: Write + Seek> {
    builder: &'b mut Builder<W>,
}

impl<'a, W: Write + Seek> Visitor<'a> for Copier<'_, W> {
    fn enter_bucket(&mut self, path: &[Vec<u8>], header: BucketHeader) -> Result<()> {
        let name = path.last().map(Vec::as_slice).unwrap_or_default();
        self.builder.create_bucket(name, header.sequence)
    }

    fn value(&mut self, _path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> Result<()> {
        self.builder.put(key, value)
    }

    fn leave_bucket(&mut self, _path: &[Vec<u8>]) -> Result<()> {
        self.builder.close_bucket()
    }
}

/// Copies every bucket, key, value and bucket sequence of `db` into `builder`.
pub fn copy_into<W: Write + Seek>(db: &Db<'_>, builder: &mut Builder<W>) -> Result<()> {
    walk(db, &mut Copier { builder })
}

/// Writes a compacted copy of `db` to `out`; `opts.txid` is replaced by the source's txid.
pub fn compact<W: Write + Seek>(db: &Db<'_>, out: W, opts: BuildOptions) -> Result<BuildSummary> {
    let mut b = Builder::new(out, BuildOptions { txid: db.meta().txid.max(1), ..opts })?;
    copy_into(db, &mut b)?;
    b.finish()
}
