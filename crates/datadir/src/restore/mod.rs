//! `restore`: a snapshot turned into ready member data dirs, as etcdutl's
//! `snapshot restore` writes them (`etcdutl/snapshot/v3_snapshot.go`), for
//! one member or every member of the new cluster from one read of the input.
//!
//! The db is the snapshot rewrite ([`etcdsnap_mvcc::rewrite`]) with a
//! [`RestoreStamp`]: the trailer checked and left off, the `members` bucket
//! replaced by the new cluster's, `members_removed` emptied, `meta`'s
//! `consistent_index` and `term` set to the new WAL's last entry — in the same
//! pass as the rewrite's own rules (prefixes, renames, bump, compaction). The
//! raft half ([`raft`]) is the same for every member but the WAL's metadata.
//! Every member after the first gets a copy of the first one's db
//! (`copy_file_range`, a reflink where the file system shares extents).
//! Each data dir is built beside its target and renamed into place only when
//! complete; a failure or an interrupt leaves nothing behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use etcdsnap_io::{create_dir_private, create_file_private, AtomicDir, DirOptions, MappedFile};
use etcdsnap_mvcc::rewrite::{
    rewrite, InputTrailer, OutputLayout, Progress, RestoreStamp, RewriteOptions, RewriteReport,
};
use etcdsnap_mvcc::schema::{read_meta, EtcdLine};
use etcdsnap_mvcc::TrailerMode;

use crate::error::{DataDirError, Result};

pub mod cluster;
pub mod raft;

pub use cluster::{Cluster, Member};
use raft::RaftStart;

/// Which data dirs a restore writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One member, as etcdutl restores it.
    One {
        /// `--name`.
        name: String,
        /// `--initial-advertise-peer-urls` (comma-separated).
        advertise_peer_urls: String,
        /// `--data-dir` (etcdutl's default: `<name>.etcd`).
        data_dir: PathBuf,
        /// `--wal-dir` (default: `<data-dir>/member/wal`).
        wal_dir: Option<PathBuf>,
    },
    /// Every member of the initial cluster, into `<dir>/<name>`.
    All {
        /// `--members-out`.
        dir: PathBuf,
    },
}

/// Options of [`restore`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The rewrite done in the same pass (rules, bump, compaction, reseal,
    /// target version, cancel flag, meter); its trailer options are the restore's.
    pub rewrite: RewriteOptions,
    /// `--initial-cluster`.
    pub initial_cluster: String,
    /// `--initial-cluster-token`.
    pub token: String,
    /// Which data dirs to write.
    pub target: Target,
    /// `--skip-hash-check`: accept a snapshot without a trailer or with a wrong one.
    pub skip_hash_check: bool,
    /// Replace existing non-empty data dirs (each is set aside until its
    /// replacement is complete, then removed).
    pub force: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            rewrite: RewriteOptions::default(),
            initial_cluster: "default=http://localhost:2380".into(),
            token: "etcd-cluster".into(),
            target: Target::One {
                name: "default".into(),
                advertise_peer_urls: "http://localhost:2380".into(),
                data_dir: PathBuf::from("default.etcd"),
                wal_dir: None,
            },
            skip_hash_check: false,
            force: false,
        }
    }
}

/// One restored member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    /// `--name`.
    pub name: String,
    /// Member id.
    pub id: u64,
    /// The data dir written.
    pub data_dir: PathBuf,
    /// The WAL dir written.
    pub wal_dir: PathBuf,
    /// Bytes of the member's db.
    pub db_bytes: u64,
    /// Time spent on this member (the first one includes the db's rewrite).
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The new cluster's id.
    pub cluster_id: u64,
    /// The etcd line whose restore was followed.
    pub line: EtcdLine,
    /// Every member's `consistent_index` (and the WAL's last index).
    pub consistent_index: u64,
    /// The WAL's term.
    pub term: u64,
    /// The members written, in the order of the initial cluster's ids.
    pub members: Vec<MemberReport>,
    /// The db's rewrite (revision, HashKV, status, counts: the same for every member).
    pub db: RewriteReport,
    /// Wall time of the whole restore.
    pub elapsed: Duration,
}

/// Where one member goes.
struct Place<'c> {
    member: &'c Member,
    data_dir: PathBuf,
    wal_dir: Option<PathBuf>,
}

/// A member's dirs under construction.
struct Building<'c> {
    place: Place<'c>,
    data: AtomicDir,
    wal: Option<AtomicDir>,
    set_aside: Option<SetAside>,
}

/// Restores the snapshot (or raw db) `input` as `opts` say; see the module docs.
pub fn restore(input: &Path, opts: &RestoreOptions, progress: &mut dyn Progress) -> Result<RestoreReport> {
    let start = Instant::now();
    let cluster = Cluster::parse(&opts.initial_cluster, &opts.token)?;
    let places = places(&cluster, &opts.target)?;
    for p in &places {
        check_free(&p.data_dir, "data-dir", opts.force)?;
        if let Some(w) = &p.wal_dir {
            check_free(w, "wal-dir", false)?;
        }
    }
    let line = match opts.rewrite.target_version {
        Some(t) => t,
        None => line_of(input)?,
    };
    let raft = RaftStart::new(&cluster, line);
    let stamp = RestoreStamp {
        members: cluster.members.iter().map(|m| (m.id_hex().into_bytes(), m.json().into_bytes())).collect(),
        consistent_index: raft.commit,
        // 3.4 keeps no term in the db.
        term: (line >= EtcdLine::V3_5).then_some(raft::TERM),
    };
    // etcdutl creates missing parents (CreateDirAll); removed again on failure.
    let mut parents = Parents::default();
    for p in &places {
        parents.make(&p.data_dir)?;
        if let Some(w) = &p.wal_dir {
            parents.make(w)?;
        }
    }
    let mut building = Vec::with_capacity(places.len());
    for place in places {
        let set_aside = if opts.force { SetAside::existing(&place.data_dir)? } else { None };
        // Dropped on any error below: the old dir moves back.
        let stale = DirOptions { replace_empty: true, remove_stale: opts.rewrite.output.remove_stale };
        let data = AtomicDir::create(&place.data_dir, stale)?;
        let wal = place.wal_dir.as_ref().map(|w| AtomicDir::create(w, stale)).transpose()?;
        building.push(Building { place, data, wal, set_aside });
    }
    let mut rw = opts.rewrite.clone();
    rw.trailer = TrailerMode::Never;
    rw.input_trailer = if opts.skip_hash_check { InputTrailer::Skipped } else { InputTrailer::Required };
    rw.restore = Some(stamp);
    let Some((first, rest)) = building.split_first() else {
        return Err(DataDirError::Cluster("no member to restore".into()));
    };
    let t = Instant::now();
    let first_db = first.data.path().join("member/snap/db");
    create_dir_private(&first.data.path().join("member/snap"))?;
    let db = rewrite(input, &first_db, &rw, progress).map_err(|source| DataDirError::Db {
        context: format!("writing the db of {}", first.place.data_dir.display()),
        source,
    })?;
    let first_time = t.elapsed();
    // The other members' dbs are copies, made in parallel (copy_file_range:
    // in the kernel, extents shared where the file system can).
    let copies: Vec<Result<(u64, std::time::Duration)>> = std::thread::scope(|scope| {
        let jobs: Vec<_> = rest
            .iter()
            .map(|b| {
                let (from, cancel, layout) = (&first_db, &rw.cancel, db.layout);
                scope.spawn(move || -> Result<(u64, std::time::Duration)> {
                    let t = Instant::now();
                    let snap_dir = b.data.path().join("member/snap");
                    create_dir_private(&snap_dir)?;
                    cancel.check()?;
                    let n = copy_db(input, from, layout, &snap_dir.join("db"))?;
                    Ok((n, t.elapsed()))
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or_else(|_| Err(DataDirError::Cluster("a db copy panicked".into()))))
            .collect()
    });
    let mut members = Vec::with_capacity(building.len());
    let sizes = std::iter::once(Ok((db.status.total_size, first_time))).chain(copies);
    for (b, copied) in building.iter().zip(sizes) {
        let (db_bytes, copy_time) = copied?;
        let t = Instant::now();
        let snap_dir = b.data.path().join("member/snap");
        write_file(&snap_dir.join(&raft.snap_name), &raft.snap_file)?;
        let wal_dir = match &b.wal {
            Some(w) => w.path().to_path_buf(),
            None => b.data.path().join("member/wal"),
        };
        create_dir_private(&wal_dir)?;
        let segment = wal_dir.join(etcdsnap_wal::segment_name(0, 0));
        write_file(&segment, &raft.wal_segment(b.place.member.id, cluster.id))?;
        preallocate(&segment)?;
        members.push(MemberReport {
            name: b.place.member.name.clone(),
            id: b.place.member.id,
            data_dir: b.place.data_dir.clone(),
            wal_dir: b.place.wal_dir.clone().unwrap_or_else(|| b.place.data_dir.join("member/wal")),
            db_bytes,
            elapsed: copy_time.saturating_add(t.elapsed()),
        });
    }
    rw.cancel.check()?;
    commit_all(building)?;
    parents.keep();
    Ok(RestoreReport {
        cluster_id: cluster.id,
        line,
        consistent_index: raft.commit,
        term: raft::TERM,
        members,
        db,
        elapsed: start.elapsed(),
    })
}

/// Commits every member's dirs; a failure part way removes those committed
/// (and the dirs `--force` set aside move back, see [`SetAside`]).
fn commit_all(building: Vec<Building<'_>>) -> Result<()> {
    let mut done: Vec<PathBuf> = Vec::new();
    let mut asides = Vec::new();
    for b in building {
        asides.extend(b.set_aside);
        let data_dir = b.data.target().to_path_buf();
        let r = match b.wal {
            Some(w) => {
                let wal_dir = w.target().to_path_buf();
                w.commit().map(|()| done.push(wal_dir))
            }
            None => Ok(()),
        }
        .and_then(|()| b.data.commit().map(|()| done.push(data_dir)));
        if let Err(e) = r {
            for d in done {
                let _ = fs::remove_dir_all(d);
            }
            return Err(e.into());
        }
    }
    for a in asides {
        a.remove();
    }
    Ok(())
}

/// The dirs of each member to write.
fn places<'c>(cluster: &'c Cluster, target: &Target) -> Result<Vec<Place<'c>>> {
    match target {
        Target::One { name, advertise_peer_urls, data_dir, wal_dir } => {
            let member = cluster.local(name, advertise_peer_urls)?;
            Ok(vec![Place { member, data_dir: data_dir.clone(), wal_dir: wal_dir.clone() }])
        }
        Target::All { dir } => cluster
            .members
            .iter()
            .map(|member| {
                let n = &member.name;
                if n.is_empty() || n == "." || n == ".." || n.contains(['/', '\0']) {
                    return Err(DataDirError::Cluster(format!(
                        "member name {n:?} cannot name a directory under --members-out"
                    )));
                }
                Ok(Place { member, data_dir: dir.join(n), wal_dir: None })
            })
            .collect(),
    }
}

/// Directories a restore created above its data dirs (outermost first),
/// removed again (when still empty) unless [`keep`](Parents::keep) is called.
#[derive(Default)]
struct Parents {
    made: Vec<PathBuf>,
    keep: bool,
}

impl Parents {
    /// Creates the missing ancestors of `dir` (mode 0700).
    fn make(&mut self, dir: &Path) -> Result<()> {
        let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else { return Ok(()) };
        let missing: Vec<PathBuf> = parent
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        create_dir_private(parent)?;
        self.made.extend(missing.into_iter().rev());
        Ok(())
    }

    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Parents {
    fn drop(&mut self) {
        if !self.keep {
            for d in self.made.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

/// Refuses an existing non-empty `dir` (etcdutl: "data-dir %q not empty or
/// could not be read", "wal-dir %q exists") unless `force`.
fn check_free(dir: &Path, flag: &str, force: bool) -> Result<()> {
    let occupied = match fs::read_dir(dir) {
        Ok(mut it) => it.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => dir.exists(),
    };
    let shown = dir.display().to_string();
    if flag == "wal-dir" && dir.exists() {
        return Err(DataDirError::Exists { path: dir.to_path_buf(), what: format!("wal-dir {shown:?} exists") });
    }
    if occupied && !force {
        return Err(DataDirError::Exists {
            path: dir.to_path_buf(),
            what: format!("{flag} {shown:?} not empty or could not be read (--force replaces it)"),
        });
    }
    Ok(())
}

/// The etcd line the input was written by (its meta bucket's storage version).
fn line_of(input: &Path) -> Result<EtcdLine> {
    let ctx = |source| DataDirError::Db { context: format!("reading {}", input.display()), source };
    let file = MappedFile::open(input)?;
    let (image, _) = etcdsnap_mvcc::trailer::split(&file);
    let db = etcdsnap_bolt::Db::open(image).map_err(|e| ctx(e.into()))?;
    let meta = read_meta(&db).map_err(ctx)?;
    let v = meta.version();
    v.line().ok_or_else(|| {
        DataDirError::input(
            input,
            format!("storage version {} is not a line this tool knows; give --target-version", v.as_str()),
        )
    })
}

/// Another member's copy of the db `first` written from `input` with `layout`.
///
/// A patched db is mostly the input's pages at their own offsets; those come
/// from the input, which the page cache holds (the first db's carried pages
/// went to the disk around it), and only the rest from `first`. A rebuilt
/// db is copied whole. Both copies stay in the kernel (`copy_file_range`).
fn copy_db(input: &Path, first: &Path, layout: OutputLayout, to: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let OutputLayout::Patched { carried_from, carried_to, .. } = layout else {
        return fs::copy(first, to).map_err(|e| etcdsnap_io::Error::io(to, e).into());
    };
    let open = |p: &Path| fs::File::open(p).map_err(|e| etcdsnap_io::Error::io(p, e));
    let (mut src, mut head) = (open(input)?, open(first)?);
    let len = head.metadata().map_err(|e| etcdsnap_io::Error::io(first, e))?.len();
    let mut out = create_file_private(to)?;
    let io_to = |e| etcdsnap_io::Error::io(to, e);
    let mut copy = |from: &mut fs::File, at: u64, end: u64, path: &Path| -> Result<()> {
        from.seek(SeekFrom::Start(at)).map_err(|e| etcdsnap_io::Error::io(path, e))?;
        out.seek(SeekFrom::Start(at)).map_err(io_to)?;
        let want = end.saturating_sub(at);
        let n = std::io::copy(&mut from.take(want), &mut out).map_err(io_to)?;
        if n != want {
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} ended at {}", path.display(), at.saturating_add(n)),
            );
            return Err(etcdsnap_io::Error::io(path, e).into());
        }
        Ok(())
    };
    copy(&mut head, 0, carried_from, first)?;
    copy(&mut src, carried_from, carried_to, input)?;
    copy(&mut head, carried_to, len, first)?;
    Ok(len)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = create_file_private(path)?;
    f.write_all(bytes).map_err(|e| etcdsnap_io::Error::io(path, e))?;
    Ok(())
}

/// Sizes the WAL segment as etcd preallocates it (sparse: no blocks written).
fn preallocate(path: &Path) -> Result<()> {
    let f = fs::OpenOptions::new().write(true).open(path).map_err(|e| etcdsnap_io::Error::io(path, e))?;
    f.set_len(raft::SEGMENT_BYTES).map_err(|e| etcdsnap_io::Error::io(path, e))?;
    Ok(())
}

/// An existing data dir `--force` replaces: moved aside before its
/// replacement is built, removed once every member is committed, moved back
/// when the restore fails (on drop).
struct SetAside {
    dir: PathBuf,
    aside: PathBuf,
    replaced: bool,
}

impl SetAside {
    /// Moves the data dir `dir` aside; `None` when it does not exist or is
    /// empty. Refuses what does not look like a data dir.
    fn existing(dir: &Path) -> Result<Option<SetAside>> {
        let empty = match fs::read_dir(dir) {
            Ok(mut it) => it.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(etcdsnap_io::Error::io(dir, e).into()),
        };
        if empty {
            return Ok(None);
        }
        if !dir.join("member").is_dir() {
            return Err(DataDirError::Exists {
                path: dir.to_path_buf(),
                what: format!(
                    "{} is not an etcd data dir (no member/): --force only replaces data dirs",
                    dir.display()
                ),
            });
        }
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aside = dir.with_file_name(format!(".{name}.replaced.{}", std::process::id()));
        fs::rename(dir, &aside).map_err(|e| etcdsnap_io::Error::io(dir, e))?;
        Ok(Some(SetAside { dir: dir.to_path_buf(), aside, replaced: false }))
    }

    /// The replacement is in place: the old dir goes.
    fn remove(mut self) {
        self.replaced = true;
        let _ = fs::remove_dir_all(&self.aside);
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        if !self.replaced && !self.dir.exists() {
            let _ = fs::rename(&self.aside, &self.dir);
        }
    }
}
