//! Depth-first traversal of every bucket and key, for dumps and copies.

use std::collections::HashSet;

use crate::bucket::Bucket;
use crate::check::MAX_BUCKET_DEPTH;
use crate::db::Db;
use crate::error::{CorruptKind, Corruption, Result};
use crate::layout::{BucketHeader, Pgid};
use crate::page::BucketRoot;

/// Receives the contents of a database in key order (see [`walk`]).
pub trait Visitor<'a> {
    /// A bucket starts; `path` names it from the top level down.
    fn enter_bucket(&mut self, path: &[Vec<u8>], header: BucketHeader) -> Result<()>;
    /// A key/value pair of the bucket at `path`.
    fn value(&mut self, path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> Result<()>;
    /// The bucket at `path` ends.
    fn leave_bucket(&mut self, path: &[Vec<u8>]) -> Result<()> {
        let _ = path;
        Ok(())
    }
}

/// Visits every bucket (depth-first, at its key's place in its parent) and every
/// key/value pair, in byte order. A bucket root page reached twice stops the walk
/// with an error, so a corrupt file cannot make it loop.
pub fn walk<'a, V: Visitor<'a>>(db: &Db<'a>, visitor: &mut V) -> Result<()> {
    let root = db.root()?;
    let mut seen = HashSet::new();
    walk_bucket(&root, visitor, &mut seen, 0)
}

fn walk_bucket<'a, V: Visitor<'a>>(
    bucket: &Bucket<'a>,
    visitor: &mut V,
    seen: &mut HashSet<Pgid>,
    nesting: usize,
) -> Result<()> {
    if nesting > MAX_BUCKET_DEPTH {
        return Err(Corruption::new(CorruptKind::BucketsTooDeep { max: MAX_BUCKET_DEPTH })
            .in_bucket(bucket.path())
            .into());
    }
    for entry in bucket.cursor() {
        let entry = entry?;
        if !entry.is_bucket() {
            visitor.value(bucket.path(), entry.key, entry.value)?;
            continue;
        }
        let child = bucket.child(entry)?;
        if let BucketRoot::Paged(id) = child.root() {
            if !seen.insert(id) {
                return Err(Corruption::on_page(id, CorruptKind::MultipleReferences).in_bucket(child.path()).into());
            }
        }
        visitor.enter_bucket(child.path(), child.header())?;
        walk_bucket(&child, visitor, seen, nesting.saturating_add(1))?;
        visitor.leave_bucket(child.path())?;
    }
    Ok(())
}
