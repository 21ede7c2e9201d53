//! What happens when a mapped input shrinks under us.
//!
//! A file truncated by another process while we have it mapped makes every read
//! of a page past its new end raise SIGBUS, whose default action kills the
//! process without running any clean-up: the temporary output stays behind and
//! the operator reads "Bus error". Reading through `read(2)` instead would turn
//! the fault into a short read, but costs a copy of every page (and the
//! zero-copy reader hands out slices of the whole file), so the map stays and
//! the fault is caught instead:
//!
//! - every [`MappedFile`](super::MappedFile) registers its address range and
//!   path here, and every temporary output ([`AtomicFile`](crate::AtomicFile),
//!   or a directory a caller builds, [`TempRegistration::dir`]) its path;
//! - [`install`] (called by a program, never by the library on its own) sets a
//!   SIGBUS handler that looks the fault address (`si_addr`) up among the
//!   registered maps. Inside one, it removes the registered temporaries with
//!   `unlinkat`/`getdents64`/`openat` (async-signal-safe system calls), writes
//!   one line naming the input to stderr and `_exit(1)`s. Any other SIGBUS (not
//!   in a map of ours, or sent by `kill`) goes to the handler found before
//!   ours (Rust's runtime, or the default: the process dies as it would have).
//!
//! SIGSEGV is not caught: inside a map it means a read past the *mapping*, not
//! past the file, i.e. a bug of ours, and must stay a crash.
//!
//! The registries are fixed arrays of atomics (no allocation, no lock in the
//! handler). A registration that finds no free slot is not guarded (the fault
//! is then fatal as before); 64 slots are far more than a command uses.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

const SLOTS: usize = 64;
const FREE: u8 = 0;
const BUSY: u8 = 1;
const READY: u8 = 2;
const KIND_FILE: usize = 0;
const KIND_DIR: usize = 1;
/// How deep a temporary directory is removed (`OUT/member/snap/db` is 3 below it).
const MAX_DIR_DEPTH: u32 = 6;

/// One registry entry: a map (`a` = start address, `b` = length) or a
/// temporary (`a` = kind), with its path as a leaked C string.
struct Slot {
    state: AtomicU8,
    a: AtomicUsize,
    b: AtomicUsize,
    path: AtomicPtr<libc::c_char>,
}

impl Slot {
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(FREE),
            a: AtomicUsize::new(0),
            b: AtomicUsize::new(0),
            path: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

static MAPS: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
static TEMPS: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
/// The program name the message starts with (a leaked C string; null until [`install`]).
static PROGRAM: AtomicPtr<libc::c_char> = AtomicPtr::new(ptr::null_mut());
/// The `struct sigaction` that was in place before ours, for faults not ours.
static PREVIOUS: AtomicPtr<libc::sigaction> = AtomicPtr::new(ptr::null_mut());
/// Set by the first thread to handle a fault of ours; a second one waits for its `_exit`.
static HANDLING: AtomicBool = AtomicBool::new(false);

fn c_path(path: &Path) -> Option<CString> {
    CString::new(OsStr::as_bytes(path.as_os_str())).ok()
}

/// Fills a free slot of `table`; `None` when the table is full or the path has a NUL.
fn register(table: &'static [Slot; SLOTS], a: usize, b: usize, path: &Path) -> Option<usize> {
    let path = c_path(path)?;
    let (i, slot) = table
        .iter()
        .enumerate()
        .find(|(_, s)| s.state.compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
    slot.a.store(a, Ordering::Relaxed);
    slot.b.store(b, Ordering::Relaxed);
    slot.path.store(path.into_raw(), Ordering::Relaxed);
    slot.state.store(READY, Ordering::Release);
    Some(i)
}

fn unregister(table: &'static [Slot; SLOTS], i: usize) {
    let Some(slot) = table.get(i) else { return };
    // Hidden from the handler first, then freed.
    slot.state.store(BUSY, Ordering::Release);
    let p = slot.path.swap(ptr::null_mut(), Ordering::AcqRel);
    slot.state.store(FREE, Ordering::Release);
    if !p.is_null() {
        // SAFETY: `p` came from `CString::into_raw` in `register` and was swapped out once.
        drop(unsafe { CString::from_raw(p) });
    }
}

/// A mapped input known to the handler while this lives.
#[derive(Debug)]
pub(crate) struct MapRegistration(Option<usize>);

impl MapRegistration {
    pub(crate) fn new(bytes: &[u8], path: &Path) -> Self {
        Self(register(&MAPS, bytes.as_ptr() as usize, bytes.len(), path))
    }
}

impl Drop for MapRegistration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            unregister(&MAPS, i);
        }
    }
}

/// A temporary output that the SIGBUS handler removes before exiting, as long
/// as this lives (drop it once the temporary is renamed into place or removed).
#[derive(Debug)]
pub struct TempRegistration(Option<usize>);

impl TempRegistration {
    /// A temporary file.
    pub fn file(path: &Path) -> Self {
        Self(register(&TEMPS, KIND_FILE, 0, path))
    }

    /// A temporary directory, removed with everything in it (a few levels deep).
    pub fn dir(path: &Path) -> Self {
        Self(register(&TEMPS, KIND_DIR, 0, path))
    }
}

impl Drop for TempRegistration {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            unregister(&TEMPS, i);
        }
    }
}

/// Installs the SIGBUS handler described in the module docs, for a program
/// whose messages start with `program` (once per process; later calls do nothing).
pub fn install(program: &str) -> std::io::Result<()> {
    let name = CString::new(program).map_err(std::io::Error::other)?;
    if PROGRAM.compare_exchange(ptr::null_mut(), name.into_raw(), Ordering::AcqRel, Ordering::Acquire).is_err() {
        return Ok(());
    }
    // SAFETY: plain libc calls on zeroed, then filled, `sigaction` structs; the
    // previous action is leaked on purpose (the handler may read it any time).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        let previous = Box::into_raw(Box::new(std::mem::zeroed::<libc::sigaction>()));
        if libc::sigaction(libc::SIGBUS, &action, previous) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        PREVIOUS.store(previous, Ordering::Release);
    }
    Ok(())
}

/// The registered map containing `addr`: its path.
fn map_at(addr: usize) -> Option<*const libc::c_char> {
    MAPS.iter().find_map(|s| {
        if s.state.load(Ordering::Acquire) != READY {
            return None;
        }
        let (start, len) = (s.a.load(Ordering::Relaxed), s.b.load(Ordering::Relaxed));
        let inside = addr >= start && addr.checked_sub(start).is_some_and(|off| off < len);
        let p = s.path.load(Ordering::Acquire);
        (inside && !p.is_null()).then_some(p.cast_const())
    })
}

/// `write(2)` of a C string to stderr (async-signal-safe).
fn write_c(s: *const libc::c_char) {
    if s.is_null() {
        return;
    }
    // SAFETY: `s` is a NUL-terminated string registered by us and not yet freed.
    unsafe {
        let len = libc::strlen(s);
        let _ = libc::write(libc::STDERR_FILENO, s.cast(), len);
    }
}

fn write_bytes(b: &[u8]) {
    // SAFETY: writes from a valid slice.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, b.as_ptr().cast(), b.len()) };
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = if info.is_null() { 0 } else { (unsafe { (*info).si_addr() }) as usize };
    let code = if info.is_null() { 0 } else { unsafe { (*info).si_code } };
    let ours = if code > 0 { map_at(addr) } else { None };
    match ours {
        Some(path) => {
            if HANDLING.swap(true, Ordering::AcqRel) {
                // Another thread is cleaning up and will _exit the process.
                loop {
                    // SAFETY: pause(2) is async-signal-safe.
                    unsafe { libc::pause() };
                }
            }
            let removed = remove_temps();
            // SAFETY: isatty(3) is a plain ioctl.
            if unsafe { libc::isatty(libc::STDERR_FILENO) } == 1 {
                // Start on a clean line under a progress bar.
                write_bytes(b"\r\x1b[2K");
            }
            write_c(PROGRAM.load(Ordering::Acquire));
            write_bytes(b": ");
            write_c(path);
            write_bytes(b": the file changed while being read (truncated by another process); stopped");
            write_bytes(if removed { b", the temporary output was removed\n" } else { b"\n" });
            // SAFETY: _exit(2) is async-signal-safe and runs no Rust code.
            unsafe { libc::_exit(1) };
        }
        None => pass_on(sig, info, ctx),
    }
}

/// Hands a fault that is not ours to the action found before ours.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let previous = PREVIOUS.load(Ordering::Acquire);
    // SAFETY: `previous` was filled by sigaction(2) and is never freed.
    unsafe {
        if !previous.is_null() {
            let p = &*previous;
            let handler = p.sa_sigaction;
            if handler != libc::SIG_DFL && handler != libc::SIG_IGN {
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(handler);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                    f(sig);
                }
                return;
            }
        }
        // The default action: back to SIG_DFL; a real fault happens again on
        // return, a sent signal is raised again (pending until we return).
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        libc::sigaction(libc::SIGBUS, &dfl, ptr::null_mut());
        libc::raise(libc::SIGBUS);
    }
}

/// Removes every registered temporary; whether there was any.
fn remove_temps() -> bool {
    let mut any = false;
    for s in &TEMPS {
        if s.state.load(Ordering::Acquire) != READY {
            continue;
        }
        let p = s.path.load(Ordering::Acquire);
        if p.is_null() {
            continue;
        }
        let depth = if s.a.load(Ordering::Relaxed) == KIND_DIR { MAX_DIR_DEPTH } else { 0 };
        remove_tree(libc::AT_FDCWD, p, depth);
        any = true;
    }
    any
}

/// Removes `name` (relative to `dirfd`): a file, or a directory up to `depth`
/// levels deep, with system calls only.
fn remove_tree(dirfd: libc::c_int, name: *const libc::c_char, depth: u32) {
    // SAFETY: system calls on a NUL-terminated name and a stack buffer of the
    // size passed; getdents64 records are read through bounds-checked slices.
    unsafe {
        if libc::unlinkat(dirfd, name, 0) == 0 || depth == 0 {
            return;
        }
        let fd = libc::openat(dirfd, name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        // Removing entries while reading the directory may skip some: a few passes.
        for _ in 0..4 {
            libc::lseek(fd, 0, libc::SEEK_SET);
            let mut buf = [0u64; 512];
            let size = std::mem::size_of_val(&buf);
            let mut removed_any = false;
            loop {
                let n = libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), size);
                let Ok(n) = usize::try_from(n) else { break };
                if n == 0 {
                    break;
                }
                let bytes = std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n.min(size));
                let mut off = 0usize;
                // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
                while let Some(rec) = bytes.get(off..) {
                    let Some(&[lo, hi]) = rec.get(16..18).and_then(|s| <&[u8; 2]>::try_from(s).ok()) else {
                        break;
                    };
                    let reclen = usize::from(u16::from_ne_bytes([lo, hi]));
                    let Some(name_bytes) = rec.get(19..reclen) else { break };
                    let dot = name_bytes.first() == Some(&b'.')
                        && matches!(name_bytes.get(1..), Some([0, ..]) | Some([b'.', 0, ..]));
                    if !dot && name_bytes.contains(&0) {
                        remove_tree(fd, name_bytes.as_ptr().cast(), depth.saturating_sub(1));
                        removed_any = true;
                    }
                    if reclen == 0 {
                        break;
                    }
                    off = off.saturating_add(reclen);
                }
            }
            if libc::unlinkat(dirfd, name, libc::AT_REMOVEDIR) == 0 || !removed_any {
                break;
            }
        }
        libc::close(fd);
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_found_by_address_until_dropped() {
        let bytes = vec![7u8; 100];
        let r = MapRegistration::new(&bytes, Path::new("/some/input.db"));
        let base = bytes.as_ptr() as usize;
        let found = map_at(base + 99).map(|p| unsafe { std::ffi::CStr::from_ptr(p) }.to_owned());
        assert_eq!(found.as_deref(), Some(c"/some/input.db"));
        assert!(map_at(base + 100).is_none() && map_at(base.wrapping_sub(1)).is_none());
        drop(r);
        assert!(map_at(base).is_none());
    }

    #[test]
    fn temporary_trees_are_removed_with_system_calls() {
        let dir = std::env::temp_dir().join(format!("etcdsnap-guard-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("member/snap")).unwrap();
        std::fs::create_dir_all(dir.join("member/wal")).unwrap();
        for i in 0..300 {
            std::fs::write(dir.join(format!("member/wal/{i:016}-{i:016}.wal")), b"x").unwrap();
        }
        std::fs::write(dir.join("member/snap/db"), b"db").unwrap();
        let file = std::env::temp_dir().join(format!("etcdsnap-guard-file-{}", std::process::id()));
        std::fs::write(&file, b"tmp").unwrap();
        let c = c_path(&dir).unwrap();
        remove_tree(libc::AT_FDCWD, c.as_ptr(), MAX_DIR_DEPTH);
        let f = c_path(&file).unwrap();
        remove_tree(libc::AT_FDCWD, f.as_ptr(), 0);
        assert!(!dir.exists() && !file.exists());
    }
}
