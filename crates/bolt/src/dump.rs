//! The canonical text dump shared with the Go oracle (`tools/boltoracle dump`).
//!
//! ```text
//! B <path> <sequence>          a bucket; path = hex names from the top level, joined by '/'
//! K <path> <hexkey> <hexvalue> a key of the bucket at path; an empty value is '-'
//! END <buckets> <keys>
//! ```

use std::io::Write;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::layout::BucketHeader;
use crate::walk::{walk, Visitor};

struct Dumper<W> {
    out: W,
    buckets: u64,
    keys: u64,
    line: Vec<u8>,
}

fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef".get(usize::from(n & 0x0f)).copied().unwrap_or(b'0')
}

fn push_hex(line: &mut Vec<u8>, bytes: &[u8]) {
    line.reserve(bytes.len().saturating_mul(2));
    for b in bytes {
        line.push(hex_digit(b >> 4));
        line.push(hex_digit(b & 0x0f));
    }
}

fn push_path(line: &mut Vec<u8>, path: &[Vec<u8>]) {
    for (i, name) in path.iter().enumerate() {
        if i > 0 {
            line.push(b'/');
        }
        push_hex(line, name);
    }
}

impl<W: Write> Dumper<W> {
    fn flush_line(&mut self) -> Result<()> {
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(|e| Error::io("<dump output>", e))?;
        self.line.clear();
        Ok(())
    }
}

impl<'a, W: Write> Visitor<'a> for Dumper<W> {
    fn enter_bucket(&mut self, path: &[Vec<u8>], header: BucketHeader) -> Result<()> {
        self.buckets = self.buckets.saturating_add(1);
        self.line.extend_from_slice(b"B ");
        push_path(&mut self.line, path);
        self.line.extend_from_slice(format!(" {}", header.sequence).as_bytes());
        self.flush_line()
    }

    fn value(&mut self, path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> Result<()> {
        self.keys = self.keys.saturating_add(1);
        self.line.extend_from_slice(b"K ");
        push_path(&mut self.line, path);
        self.line.push(b' ');
        push_hex(&mut self.line, key);
        self.line.push(b' ');
        if value.is_empty() {
            self.line.push(b'-');
        } else {
            push_hex(&mut self.line, value);
        }
        self.flush_line()
    }
}

/// Writes the canonical dump of `db` to `out`.
pub fn dump<W: Write>(db: &Db<'_>, out: W) -> Result<()> {
    let mut d = Dumper { out, buckets: 0, keys: 0, line: Vec::with_capacity(256) };
    walk(db, &mut d)?;
    let end = format!("END {} {}", d.buckets, d.keys);
    d.line.extend_from_slice(end.as_bytes());
    d.flush_line()?;
    d.out.flush().map_err(|e| Error::io("<dump output>", e))
}
