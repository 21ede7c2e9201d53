//! Readers of the report formats as their consumers read them: the
//! Prometheus text exposition format (what node_exporter's textfile
//! collector and the Pushgateway parse) and JUnit XML (through a real XML
//! parser, as CI systems do), and the JSON Lines report's backup lines
//! through the library's record type. Each refuses what those consumers would.

use std::collections::BTreeMap;

/// One sample: metric name and labels (sorted) -> value.
pub type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parses `{k="v",…}` (with `\\`, `\"`, `\n` escapes) at the start of `s`;
/// returns the labels and the rest after `}`.
fn labels(s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut out = BTreeMap::new();
    let mut rest = s.strip_prefix('{').unwrap_or_else(|| panic!("labels must open with {{: {line}"));
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return (out, r.to_string());
        }
        let (name, r) = rest.split_once("=\"").unwrap_or_else(|| panic!("label without =\": {line}"));
        assert!(is_label_name(name), "bad label name {name:?}: {line}");
        let mut value = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => panic!("bad escape {other:?}: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        assert!(out.insert(name.to_string(), value).is_none(), "label {name} twice: {line}");
        rest = &r[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses a whole exposition: every sample's metric has a `# TYPE` line
/// before it (and at most one), no sample repeats, every value is a number.
pub fn prometheus(text: &str) -> Samples {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Samples::new();
    assert!(text.ends_with('\n'), "an exposition ends with a line feed");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("bad TYPE line: {line}"));
            assert!(is_metric_name(name), "bad metric name: {line}");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "bad type: {line}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice: {line}");
            assert!(!samples.keys().any(|(n, _)| n == name), "TYPE after its samples: {line}");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or_else(|| panic!("bad HELP line: {line}"));
            assert!(helps.insert(name.to_string(), help.to_string()).is_none(), "HELP twice: {line}");
        } else if line.starts_with('#') || line.trim().is_empty() {
            continue;
        } else {
            let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("sample without value: {line}"));
            let name = &line[..name_end];
            assert!(is_metric_name(name), "bad metric name {name:?}: {line}");
            assert!(types.contains_key(name), "sample of {name} without a TYPE line before it");
            let (ls, rest) = if line[name_end..].starts_with('{') {
                labels(&line[name_end..], line)
            } else {
                (BTreeMap::new(), line[name_end..].to_string())
            };
            let mut fields = rest.split_whitespace();
            let value: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("bad value: {line}"));
            if let Some(ts) = fields.next() {
                ts.parse::<i64>().unwrap_or_else(|_| panic!("bad timestamp: {line}"));
            }
            assert!(fields.next().is_none(), "trailing text: {line}");
            assert!(samples.insert((name.to_string(), ls), value).is_none(), "sample twice: {line}");
        }
    }
    samples
}

/// The value of `metric{labels}`.
pub fn sample(s: &Samples, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let ls = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    s.get(&(metric.to_string(), ls)).copied()
}

/// One `<testcase>`: its suite, name and the failure or error it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    pub suite: String,
    pub classname: String,
    pub name: String,
    /// `failure` or `error`, with its `type` attribute.
    pub outcome: Option<(String, String)>,
}

/// Totals an element declares: `tests`, `failures`, `errors`.
pub type Declared = (u64, u64, u64);

/// A parsed JUnit document: the `<testsuites>` totals, each suite's
/// declared totals, and every test case.
#[derive(Debug, Default)]
pub struct Junit {
    pub totals: Declared,
    pub suites: BTreeMap<String, Declared>,
    pub cases: Vec<TestCase>,
}

fn attrs(e: &quick_xml::events::BytesStart<'_>) -> BTreeMap<String, String> {
    e.attributes()
        .map(|a| {
            let a = a.unwrap();
            (
                String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0).unwrap().into_owned(),
            )
        })
        .collect()
}

fn declared(a: &BTreeMap<String, String>) -> Declared {
    let n = |k: &str| a.get(k).unwrap_or_else(|| panic!("no {k} attribute in {a:?}")).parse::<u64>().unwrap();
    (n("tests"), n("failures"), n("errors"))
}

/// Parses a JUnit XML report with quick-xml; asserts the document is well
/// formed (the parser checks end tags), has one `<testsuites>` root, and
/// that every declared total equals what the elements under it hold.
pub fn junit(xml: &str) -> Junit {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let mut j = Junit::default();
    let (mut roots, mut suite, mut case): (u32, Option<String>, Option<TestCase>) = (0, None, None);
    loop {
        let ev = r.read_event().unwrap_or_else(|e| panic!("JUnit XML at byte {}: {e}", r.buffer_position()));
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"testcase" => j.cases.push(case.take().unwrap()),
                    b"testsuite" => suite = None,
                    _ => {}
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        let Some(e) = start else { continue };
        let a = attrs(&e);
        match e.name().as_ref() {
            b"testsuites" => {
                roots += 1;
                j.totals = declared(&a);
            }
            b"testsuite" => {
                let name = a["name"].clone();
                assert!(j.suites.insert(name.clone(), declared(&a)).is_none(), "suite {name} twice");
                suite = (!empty).then_some(name);
            }
            b"testcase" => {
                let c = TestCase {
                    suite: suite.clone().expect("a testcase inside a testsuite"),
                    classname: a["classname"].clone(),
                    name: a["name"].clone(),
                    outcome: None,
                };
                if empty {
                    j.cases.push(c);
                } else {
                    case = Some(c);
                }
            }
            kind @ (b"failure" | b"error") => {
                let c = case.as_mut().expect("a failure inside a testcase");
                assert!(c.outcome.is_none(), "two outcomes in {}", c.name);
                c.outcome = Some((String::from_utf8(kind.to_vec()).unwrap(), a["type"].clone()));
            }
            other => panic!("unexpected element <{}>", String::from_utf8_lossy(other)),
        }
    }
    assert_eq!(roots, 1, "one <testsuites> root");
    let count = |cs: &mut dyn Iterator<Item = &TestCase>| -> Declared {
        cs.fold((0, 0, 0), |(t, f, e), c| match c.outcome.as_ref().map(|o| o.0.as_str()) {
            Some("failure") => (t + 1, f + 1, e),
            Some(_) => (t + 1, f, e + 1),
            None => (t + 1, f, e),
        })
    };
    assert_eq!(count(&mut j.cases.iter()), j.totals, "<testsuites> totals");
    for (name, d) in &j.suites {
        assert_eq!(count(&mut j.cases.iter().filter(|c| &c.suite == name)), *d, "suite {name} totals");
    }
    j
}

/// The backup lines of a JSON Lines report, by URL; each also read through
/// the library's record type, unknown fields denied (the documented contract).
pub fn backups_of(lines: &[serde_json::Value]) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for l in lines.iter().filter(|l| l["type"] == "backup") {
        let mut v = l.clone();
        v.as_object_mut().unwrap().remove("type");
        let r: etcdsnap_remote::BackupRecord = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(out.insert(r.url.clone(), v).is_none(), "{} twice", r.url);
    }
    out
}
