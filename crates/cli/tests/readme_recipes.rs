//! The README's recipes run as written: every `$ ` line of the "Recipes"
//! section is run by bash in a scratch directory holding a link to
//! `testdata/`, with this build's `etcdsnap` first on PATH, and its output must
//! be the indented text under it (elapsed times `in N.NNs` aside).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::Path;
use std::process::{Command, Stdio};

use etcdsnap_testkit::{root, scratch};

/// (command, expected output) of each recipe.
fn recipes() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("\n## Recipes\n").expect("a Recipes section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out = Vec::new();
    let mut lines = section.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(cmd) = line.strip_prefix("    $ ") else { continue };
        let mut expected = String::new();
        while let Some(next) = lines.peek() {
            match next.strip_prefix("    ") {
                Some(text) if !text.starts_with("$ ") => {
                    expected.push_str(text);
                    expected.push('\n');
                    lines.next();
                }
                _ => break,
            }
        }
        out.push((cmd.to_string(), expected));
    }
    out
}

/// `in 0.01s` → `in N.NNs`.
fn normalise(text: &str) -> String {
    text.lines()
        .map(|l| match l.rfind(" in ") {
            Some(i) if l[i + 4..].ends_with('s') && l[i + 4..l.len() - 1].parse::<f64>().is_ok() => {
                format!("{} in N.NNs", &l[..i])
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn readme_recipes_run_as_written() {
    let recipes = recipes();
    assert!(recipes.len() >= 5, "{recipes:?}");
    let dir = scratch("readme-recipes");
    #[cfg(unix)]
    std::os::unix::fs::symlink(root().join("testdata"), dir.join("testdata")).unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_etcdsnap")).parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for (cmd, expected) in recipes {
        let o = Command::new("bash")
            .args(["-c", &cmd])
            .current_dir(&dir)
            .env("PATH", &path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(o.stderr.is_empty(), "{cmd}: stderr {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(normalise(&got), normalise(&expected), "recipe: {cmd}");
    }
}
