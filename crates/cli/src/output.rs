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

/// Output formats, as etcdctl's and etcdutl's `-w/--write-out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people (each command's own layout).
    #[default]
    Simple,
    /// The command's JSON contract (one object, or JSON Lines for listings).
    Json,
    /// The JSON fields as a table: one header row, one row per object.
    Table,
    /// The JSON fields one per line, `"name" : value`, as etcdctl's `fields`.
    Fields,
}

/// `-w/--write-out FORMAT` and its short form `--json`, shared by every reporting command.
#[derive(Debug, Clone, clap::Args)]
pub struct FormatArgs {
    /// Output format: simple, json, table or fields (as etcdctl's -w).
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Simple)]
    write_out: Format,
    /// Short for -w json.
    #[arg(long, conflicts_with = "write_out")]
    json: bool,
}

impl FormatArgs {
    /// The chosen format.
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.write_out
        }
    }

    /// Whether the output is built from the JSON contract (json, table, fields).
    pub fn structured(&self) -> bool {
        self.format() != Format::Simple
    }
}

/// Buffered stdout whose write errors become [`BrokenPipe`] when the reader went away.
pub struct Out {
    w: BufWriter<Stdout>,
    format: Format,
    /// Rows of a `table` output, printed at [`flush`](Out::flush): the column widths need them all.
    table: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Out {
    pub fn new() -> Self {
        Self { w: BufWriter::with_capacity(1 << 16, io::stdout()), format: Format::Simple, table: Vec::new() }
    }

    /// How [`json`](Out::json) renders objects from now on.
    pub fn set_format(&mut self, format: Format) {
        self.format = format;
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

    /// Writes one report object in the chosen format: a line of JSON, `fields`
    /// lines, or a row of the table printed at the end.
    pub fn json(&mut self, v: &impl Serialize) -> anyhow::Result<()> {
        match self.format {
            Format::Simple | Format::Json => self.json_line(v),
            Format::Fields => {
                let value = serde_json::to_value(v)?;
                for (name, v) in flatten(&value) {
                    self.line(format!("\"{name}\" : {v}"))?;
                }
                Ok(())
            }
            Format::Table => {
                self.table.push(match serde_json::to_value(v)? {
                    serde_json::Value::Object(m) => m,
                    other => [("value".to_string(), other)].into_iter().collect(),
                });
                Ok(())
            }
        }
    }

    fn json_line(&mut self, v: &impl Serialize) -> anyhow::Result<()> {
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
        let rows = std::mem::take(&mut self.table);
        if !rows.is_empty() {
            for line in ascii_table(&rows) {
                self.line(line)?;
            }
        }
        self.w.flush().map_err(Self::map)
    }
}

/// The top-level fields of a JSON object (a non-object is one field named `value`),
/// each value as compact JSON text (strings with their quotes, as etcdctl's `fields`).
fn flatten(v: &serde_json::Value) -> Vec<(String, String)> {
    match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect(),
        other => vec![("value".to_string(), other.to_string())],
    }
}

/// An etcdctl-style boxed table: the union of the rows' field names as the header.
fn ascii_table(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    let mut cols: Vec<String> = Vec::new();
    for r in rows {
        for k in r.keys() {
            if !cols.contains(k) {
                cols.push(k.clone());
            }
        }
    }
    let cell = |r: &serde_json::Map<String, serde_json::Value>, c: &str| -> String {
        match r.get(c) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        }
    };
    let header: Vec<String> = cols.iter().map(|c| c.replace('_', " ").to_uppercase()).collect();
    let widths: Vec<usize> = cols
        .iter()
        .zip(&header)
        .map(|(c, h)| rows.iter().map(|r| cell(r, c).chars().count()).chain([h.chars().count()]).max().unwrap_or(0))
        .collect();
    let rule = format!("+{}+", widths.iter().map(|w| "-".repeat(w.saturating_add(2))).collect::<Vec<_>>().join("+"));
    let row = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!(" {c:<w$} ")).collect();
        format!("|{}|", padded.join("|"))
    };
    let mut out = vec![rule.clone(), row(header.clone()), rule.clone()];
    for r in rows {
        out.push(row(cols.iter().map(|c| cell(r, c)).collect()));
    }
    out.push(rule);
    out
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

/// The stale temporary files and directories for a JSON report; each kept one is also named on stderr.
pub fn stale_files(stale: &[etcdsnap_io::StaleTemp]) -> Vec<StaleJson> {
    for s in stale.iter().filter(|s| !s.removed) {
        eprintln!(
            "etcdsnap: warning: {} ({} bytes) is a temporary {} an interrupted run left; --force removes it",
            s.path.display(),
            s.bytes,
            if s.dir { "directory" } else { "file" }
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
                if c.saturating_add(1) == r.len() {
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
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_text_or_base64() {
        assert_eq!(serde_json::to_string(&Bytes(b"/registry/pods")).unwrap(), "\"/registry/pods\"");
        assert_eq!(serde_json::to_string(&Bytes(&[0xff, 0x00])).unwrap(), "{\"base64\":\"/wA=\"}");
    }

    #[test]
    fn fields_and_table_come_from_the_json() {
        let v = serde_json::json!({"hash": 7, "trailer": "valid", "list": [1, 2]});
        assert_eq!(
            flatten(&v),
            vec![
                ("hash".to_string(), "7".to_string()),
                ("trailer".to_string(), "\"valid\"".to_string()),
                ("list".to_string(), "[1,2]".to_string())
            ]
        );
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = vec![
            [("id".to_string(), serde_json::json!(3)), ("type".to_string(), serde_json::json!("leaf"))]
                .into_iter()
                .collect(),
            [("id".to_string(), serde_json::json!(10)), ("type".to_string(), serde_json::json!("meta"))]
                .into_iter()
                .collect(),
        ];
        assert_eq!(
            ascii_table(&rows),
            vec!["+----+------+", "| ID | TYPE |", "+----+------+", "| 3  | leaf |", "| 10 | meta |", "+----+------+"]
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["a".into(), "bb".into(), "c".into()], vec!["dddd".into(), "e".into(), "f".into()]];
        assert_eq!(table(&rows), vec!["a     bb  c", "dddd  e   f"]);
    }
}
