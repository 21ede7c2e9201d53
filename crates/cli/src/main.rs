//! `etcdsnap`: read, check and rewrite etcd snapshot, db and WAL files offline.
//!
//! Arguments are parsed here, each command calls the libraries and prints;
//! exit codes are decided in one place: 0 success, 1 problems found,
//! 2 usage, I/O or unreadable input.

mod bolt_cmd;
mod census_view;
mod diff_cmd;
mod du_cmd;
mod etcd_cmd;
mod fleet_cmd;
mod interrupt;
mod keys_cmd;
mod kube_view;
mod output;
mod output_args;
mod paths;
mod progress;
mod remote_args;
mod restore_cmd;
mod rewrite_cmd;
mod rules_args;
mod salvage_cmd;
mod wal_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Read, check and rewrite etcd's on-disk files offline.
#[derive(Debug, Parser)]
#[command(name = "etcdsnap", version, about, propagate_version = true)]
struct Cli {
    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and check the bbolt layer of a snapshot or db file.
    #[command(subcommand)]
    Bolt(bolt_cmd::BoltCommand),
    /// etcd's `snapshot status` figures (hash, revision, totalKey, totalSize) and more.
    Status(etcd_cmd::StatusArgs),
    /// etcd's HashKV over the file, as `etcdctl endpoint hashkv` would answer.
    Hashkv(etcd_cmd::HashkvArgs),
    /// Verify backups, local or in object storage (a whole bucket per cluster
    /// with --recursive --group-by): trailer, bbolt structure, MVCC invariants; exit 1 on problems.
    Verify(etcd_cmd::VerifyArgs),
    /// The key space at a revision (or every stored revision).
    Keys(keys_cmd::KeysArgs),
    /// Keys and values at a revision, like `etcdctl get` (one key, or a prefix), as raw bytes.
    Get(keys_cmd::GetArgs),
    /// Rewrite a snapshot: filter and rename prefixes, bump revisions, mark compacted or compact.
    Rewrite(rewrite_cmd::RewriteArgs),
    /// Restore a snapshot into member data dirs, as `etcdutl snapshot restore` (one member or all).
    Restore(restore_cmd::RestoreArgs),
    /// Salvage a damaged db or snapshot into a restorable snapshot; report what was lost (exit 1 if anything).
    Salvage(salvage_cmd::SalvageArgs),
    /// What fills the file: live data, history and leases per tenant, resource, namespace or prefix.
    Du(du_cmd::DuArgs),
    /// Where two snapshots, dbs or members' data dirs differ (keys, leases, auth, members, history).
    Diff(diff_cmd::DiffArgs),
    /// WAL segments and .snap files: verify, dump, repair, rewrite.
    #[command(subcommand)]
    Wal(wal_cmd::WalCommand),
    /// Fleet reports: merge the JSON Lines reports of sharded `verify` runs.
    #[command(subcommand)]
    Report(fleet_cmd::ReportCommand),
}

/// What a command found, mapped to the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything fine: exit 0.
    Clean,
    /// A check found problems: exit 1.
    Problems,
    /// Some input could not be read at all (a fleet run's object): exit 2.
    Unreadable,
}

impl From<etcdsnap_mvcc::Verdict> for Outcome {
    fn from(v: etcdsnap_mvcc::Verdict) -> Self {
        match v {
            etcdsnap_mvcc::Verdict::Clean => Self::Clean,
            etcdsnap_mvcc::Verdict::Problems => Self::Problems,
        }
    }
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
    progress::set_quiet(cli.quiet);
    // Large tables (per-key indexes) go back to the system when a pass drops
    // them, instead of staying in the heap beside the next pass's.
    etcdsnap_io::pin_mmap_threshold(256 << 10);
    // An input truncated while mapped raises SIGBUS: exit 1 naming it, with the
    // temporary outputs removed, instead of dying with "Bus error".
    #[cfg(unix)]
    if let Err(e) = etcdsnap_io::fault_guard::install("etcdsnap") {
        eprintln!("etcdsnap: cannot install the SIGBUS handler: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Bolt(cmd) => bolt_cmd::run(cmd),
        Command::Status(a) => with_out(|out| etcd_cmd::status_cmd(&a, out)),
        Command::Hashkv(a) => with_out(|out| etcd_cmd::hashkv_cmd(&a, out)),
        Command::Verify(a) => with_out(|out| etcd_cmd::verify_cmd(&a, out)),
        Command::Keys(a) => with_out(|out| keys_cmd::keys_cmd(&a, out)),
        Command::Get(a) => with_out(|out| keys_cmd::get_cmd(&a, out)),
        Command::Rewrite(a) => with_out(|out| rewrite_cmd::run(&a, out)),
        Command::Restore(a) => with_out(|out| restore_cmd::run(&a, out)),
        Command::Salvage(a) => with_out(|out| salvage_cmd::run(&a, out)),
        Command::Du(a) => with_out(|out| du_cmd::run(&a, out)),
        Command::Diff(a) => with_out(|out| diff_cmd::run(&a, out)),
        Command::Wal(cmd) => with_out(|out| wal_cmd::run(cmd, out)),
        Command::Report(cmd) => with_out(|out| fleet_cmd::report_cmd(&cmd, out)),
    };
    let e = match result {
        Ok(Outcome::Clean) => return ExitCode::SUCCESS,
        Ok(Outcome::Problems) => return ExitCode::from(1),
        Ok(Outcome::Unreadable) => return ExitCode::from(2),
        Err(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    // Exit codes: 1 what was read is no statement about the file (as a failed
    // check), 128+N stopped by signal N, 2 anything else (usage, I/O, refusals).
    match (kind(&e), interrupt::received()) {
        (Some(etcdsnap_io::ErrorKind::InputChanged), _) => {
            eprintln!("etcdsnap: {e:#}");
            ExitCode::from(1)
        }
        // A signal stopped a write: the library removed its temporary file.
        (_, Some((sig, name))) => {
            eprintln!("etcdsnap: interrupted by {name}; the temporary output file was removed, nothing was written");
            ExitCode::from(u8::try_from(sig.saturating_add(128)).unwrap_or(130))
        }
        _ => {
            eprintln!("etcdsnap: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command with buffered stdout, flushed at the end.
fn with_out(f: impl FnOnce(&mut output::Out) -> anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
    let mut out = output::Out::new();
    let outcome = f(&mut out)?;
    out.flush()?;
    Ok(outcome)
}

/// What kind of failure `e` is, from the first library error in its chain:
/// the one place that knows the library error types.
fn kind(e: &anyhow::Error) -> Option<etcdsnap_io::ErrorKind> {
    e.chain().find_map(|c| {
        c.downcast_ref::<etcdsnap_mvcc::MvccError>()
            .map(etcdsnap_mvcc::MvccError::kind)
            .or_else(|| c.downcast_ref::<etcdsnap_bolt::Error>().map(etcdsnap_bolt::Error::kind))
            .or_else(|| c.downcast_ref::<etcdsnap_wal::WalError>().map(etcdsnap_wal::WalError::kind))
            .or_else(|| c.downcast_ref::<etcdsnap_io::Error>().map(etcdsnap_io::Error::kind))
            .or_else(|| c.downcast_ref::<etcdsnap_datadir::DataDirError>().map(etcdsnap_datadir::DataDirError::kind))
            // An object input's error, told with its URL: the kind of what it wraps.
            .or_else(|| c.downcast_ref::<remote_args::NamedByUrl>().and_then(|n| kind(n.inner())))
    })
}

/// A closed stdout (`etcdsnap … | head`) ends the command quietly.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<output::BrokenPipe>()
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
