//! `docs/cli-reference.md` is generated from the argument definitions, so it
//! cannot drift: this test renders `etcdsnap --help` and the `--help` of every
//! subcommand (nested ones too: `wal …`, `bolt …`) and fails when the
//! committed file differs. `UPDATE_EXPECT=1` regenerates it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::process::Command;

use etcdsnap_testkit::root;

fn help(path: &[String]) -> String {
    let o =
        Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(path).arg("--help").env("COLUMNS", "100").output().unwrap();
    assert!(o.status.success(), "{path:?} --help: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// The subcommands a help text lists under `Commands:` (`help` aside).
fn subcommands(text: &str) -> Vec<String> {
    let Some(start) = text.find("\nCommands:\n") else { return Vec::new() };
    text[start + 11..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

fn render(path: &mut Vec<String>, out: &mut String) {
    let text = help(path);
    let title = if path.is_empty() { "etcdsnap".to_string() } else { format!("etcdsnap {}", path.join(" ")) };
    out.push_str(&format!("\n## `{title}`\n\n```text\n{}\n```\n", text.trim_end()));
    for sub in subcommands(&text) {
        path.push(sub);
        render(path, out);
        path.pop();
    }
}

#[test]
fn cli_reference_is_generated_from_the_argument_definitions() {
    let mut out = String::from(
        "# CLI reference\n\n[README](../README.md) · [commands](commands.md) · [JSON formats](json.md)\n\n\
         Generated from the argument definitions by `crates/cli/tests/cli_reference.rs`: do not edit;\n\
         run `UPDATE_EXPECT=1 cargo test -p etcdsnap --test cli_reference` after changing a flag.\n",
    );
    render(&mut Vec::new(), &mut out);
    let path = root().join("docs/cli-reference.md");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &out).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(out.matches("\n## `etcdsnap ").count() >= 20, "too few commands rendered:\n{out}");
    assert!(
        committed == out,
        "docs/cli-reference.md differs from the argument definitions: run \
         UPDATE_EXPECT=1 cargo test -p etcdsnap --test cli_reference"
    );
}
