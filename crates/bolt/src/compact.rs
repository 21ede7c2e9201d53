//! Copying a whole database through the builder: an offline `bbolt compact`.

use std::io::{Seek, Write};

use crate::builder::{BuildOptions, BuildSummary, Builder};
use crate::db::Db;
use crate::error::Result;
use crate::layout::BucketHeader;
use crate::walk::{walk, Visitor};

struct Copier<'b, W: Write> {
    builder: &'b mut Builder<W>,
}

impl<'a, W: Write> Visitor<'a> for Copier<'_, W> {
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
pub fn copy_into<W: Write>(db: &Db<'_>, builder: &mut Builder<W>) -> Result<()> {
    walk(db, &mut Copier { builder })
}

/// Writes a compacted copy of `db` to `out`; `opts.txid` is replaced by the source's txid.
pub fn compact<W: Write + Seek>(db: &Db<'_>, out: W, opts: BuildOptions) -> Result<BuildSummary> {
    let mut b = Builder::new(out, BuildOptions { txid: db.meta().txid.max(1), ..opts })?;
    copy_into(db, &mut b)?;
    b.finish()
}

/// The layout a compacted copy of `db` will have (see [`Builder::plan`]).
pub fn plan(db: &Db<'_>, opts: BuildOptions) -> Result<BuildSummary> {
    let mut b = Builder::plan(BuildOptions { txid: db.meta().txid.max(1), ..opts })?;
    copy_into(db, &mut b)?;
    b.finish()
}

/// Writes a compacted copy of `db` to `out` strictly in order, meta pages first,
/// following `layout` from [`plan`] with the same options.
pub fn compact_streamed<W: Write>(
    db: &Db<'_>,
    out: W,
    opts: BuildOptions,
    layout: &BuildSummary,
) -> Result<(W, BuildSummary)> {
    let mut b = Builder::streamed(out, BuildOptions { txid: db.meta().txid.max(1), ..opts }, layout)?;
    copy_into(db, &mut b)?;
    b.finish_streamed()
}

/// Copies the entries of `bucket` (nested buckets recursively, with their
/// sequences) into the bucket currently open in `builder`. A nested bucket
/// root reached twice is an error, so a corrupt file cannot make it loop.
pub fn copy_bucket<S: crate::builder::Sink + ?Sized>(bucket: &crate::Bucket<'_>, builder: &mut S) -> Result<()> {
    copy_nested(bucket, builder, &mut std::collections::HashSet::new(), 0)
}

fn copy_nested<S: crate::builder::Sink + ?Sized>(
    bucket: &crate::Bucket<'_>,
    builder: &mut S,
    seen: &mut std::collections::HashSet<crate::Pgid>,
    depth: usize,
) -> Result<()> {
    use crate::{CorruptKind, Corruption};
    if depth > crate::check::MAX_BUCKET_DEPTH {
        let max = crate::check::MAX_BUCKET_DEPTH;
        return Err(Corruption::new(CorruptKind::BucketsTooDeep { max }).in_bucket(bucket.path()).into());
    }
    for e in bucket.cursor() {
        let e = e?;
        if e.is_bucket() {
            let child = bucket.child(e)?;
            if let crate::page::BucketRoot::Paged(id) = child.root() {
                if !seen.insert(id) {
                    return Err(Corruption::on_page(id, CorruptKind::MultipleReferences)
                        .in_bucket(child.path())
                        .into());
                }
            }
            builder.create_bucket(e.key, child.sequence())?;
            copy_nested(&child, builder, seen, depth.saturating_add(1))?;
            builder.close_bucket()?;
        } else {
            builder.put(e.key, e.value)?;
        }
    }
    Ok(())
}
