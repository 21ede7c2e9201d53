//! SIGINT and SIGTERM while a file is written: the library is told to stop
//! (it removes its temporary file and returns), and the exit code says which
//! signal it was (128 + number: 130, 143). A second signal ends the process at
//! once, as a stuck clean-up must not hold the operator.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use etcdsnap_io::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Installs the handlers (once per process) and returns the token to hand to the library.
pub fn cancel_on_signals() -> Result<Cancel> {
    flag_on_signals().map(Cancel::new)
}

/// Installs the handlers (once per process) and returns the flag they set to the signal number.
pub fn flag_on_signals() -> Result<Arc<AtomicUsize>> {
    if let Some(flag) = RECEIVED.get() {
        return Ok(flag.clone());
    }
    let flag = Arc::new(AtomicUsize::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // The shutdown first: it fires only once the first signal has armed it.
        signal_hook::flag::register_conditional_shutdown(sig, sig.saturating_add(128), armed.clone())
            .and_then(|_| signal_hook::flag::register(sig, armed.clone()))
            .and_then(|_| signal_hook::flag::register_usize(sig, flag.clone(), usize::try_from(sig).unwrap_or(1)))
            .context("installing signal handlers")?;
    }
    Ok(RECEIVED.get_or_init(|| flag).clone())
}

/// The signal that stopped a command, when one did.
pub fn received() -> Option<(i32, &'static str)> {
    let sig = i32::try_from(RECEIVED.get()?.load(Ordering::SeqCst)).ok()?;
    match sig {
        SIGINT => Some((sig, "SIGINT")),
        SIGTERM => Some((sig, "SIGTERM")),
        _ => None,
    }
}
