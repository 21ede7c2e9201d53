//! `etcdsnap`: read, check and rewrite etcd snapshot, db and WAL files offline.
//!
//! Arguments are parsed here, each command calls the libraries and prints;
//! exit codes are decided in one place: 0 success, 1 problems found,
//! 2 usage, I/O or unreadable input.
#![forbid(unsafe_code)]

mod bolt_cmd;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Read, check and rewrite etcd's on-disk files offline.
#[derive(Debug, Parser)]
#[command(name = "etcdsnap", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and check the bbolt layer of a snapshot or db file.
    #[command(subcommand)]
    Bolt(bolt_cmd::BoltCommand),
}

/// What a command found, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything fine: exit 0.
    Clean,
    /// A check found problems: exit 1.
    Problems,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Bolt(cmd) => bolt_cmd::run(cmd),
    };
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etcdsnap: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A closed stdout (`etcdsnap … | head`) ends the command quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<output::BrokenPipe>()
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
