//! Output plumbing: stdout that treats a closed pipe as a normal end, JSON
//! encoding of bytes, and aligned tables.

use std::io::{self, BufWriter, Stdout, Write};

use base64::Engine;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Raised when stdout is closed (e.g. `| head`): the command stops quietly with success.
#[derive(Debug)]
pub struct BrokenPipe;

impl std::fmt::Display for BrokenPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "broken pipe")
    }
}

impl std::error::Error for BrokenPipe {}

/// Buffered stdout whose write errors become [`BrokenPipe`] when the reader went away.
pub struct Out {
    w: BufWriter<Stdout>,
}

impl Out {
    pub fn new() -> Self {
        Self { w: BufWriter::with_capacity(1 << 16, io::stdout()) }
    }

    fn map(e: io::Error) -> anyhow::Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            anyhow::Error::new(BrokenPipe)
        } else {
            anyhow::Error::new(e).context("writing to stdout")
        }
    }

    /// Writes one line.
    pub fn line(&mut self, s: impl AsRef<str>) -> anyhow::Result<()> {
        self.w.write_all(s.as_ref().as_bytes()).map_err(Self::map)?;
        self.w.write_all(b"\n").map_err(Self::map)
    }

    /// Writes raw bytes and a newline, unchanged (keys and values are not text).
    pub fn bytes_line(&mut self, b: &[u8]) -> anyhow::Result<()> {
        self.w.write_all(b).map_err(Self::map)?;
        self.w.write_all(b"\n").map_err(Self::map)
    }

    /// Writes one value as a line of JSON.
    pub fn json(&mut self, v: &impl Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut self.w, v).map_err(|e| match e.io_error_kind() {
            Some(io::ErrorKind::BrokenPipe) => anyhow::Error::new(BrokenPipe),
            _ => anyhow::Error::new(e),
        })?;
        self.w.write_all(b"\n").map_err(Self::map)
    }

    /// The raw writer, for library functions that stream output.
    pub fn writer(&mut self) -> &mut BufWriter<Stdout> {
        &mut self.w
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.w.flush().map_err(Self::map)
    }
}

/// Bytes in JSON: a string when they are UTF-8, else `{"base64": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bytes<'a>(pub &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &base64::engine::general_purpose::STANDARD.encode(self.0))?;
                m.end()
            }
        }
    }
}

/// Owned variant of [`Bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedBytes(pub Vec<u8>);

impl Serialize for OwnedBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Bytes(&self.0).serialize(s)
    }
}

/// A stale temporary file found beside an output, in JSON reports.
#[derive(Debug, Serialize)]
pub struct StaleJson {
    pub path: String,
    pub bytes: u64,
    pub removed: bool,
}

/// The stale temporary files for a JSON report; each kept one is also named on stderr.
pub fn stale_files(stale: &[etcdsnap_bolt::StaleTemp]) -> Vec<StaleJson> {
    for s in stale.iter().filter(|s| !s.removed) {
        eprintln!(
            "etcdsnap: warning: {} ({} bytes) is a temporary file an interrupted run left; --force removes it",
            s.path.display(),
            s.bytes
        );
    }
    stale.iter().map(|s| StaleJson { path: s.path.display().to_string(), bytes: s.bytes, removed: s.removed }).collect()
}

/// Renders rows as left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let w = widths.get(c).copied().unwrap_or(0);
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_text_or_base64() {
        assert_eq!(serde_json::to_string(&Bytes(b"/registry/pods")).unwrap(), "\"/registry/pods\"");
        assert_eq!(serde_json::to_string(&Bytes(&[0xff, 0x00])).unwrap(), "{\"base64\":\"/wA=\"}");
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["a".into(), "bb".into(), "c".into()], vec!["dddd".into(), "e".into(), "f".into()]];
        assert_eq!(table(&rows), vec!["a     bb  c", "dddd  e   f"]);
    }
}
