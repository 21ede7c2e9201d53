//! The download floor of `verify s3://…` for tools/bench-remote.sh: one GET
//! of an object through the same client `etcdsnap` uses (etcdsnap-remote's
//! stores on object_store, the same options), the body counted and dropped.
//!
//!   remote-get URL [--endpoint URL] [--allow-http]
//!
//! Prints `bytes seconds MB/s`. Credentials from the environment, as etcdsnap.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Instant;

use etcdsnap_remote::location::{RemoteUrl, Stores};
use etcdsnap_remote::StoreOptions;
use futures::StreamExt;
use object_store::ObjectStoreExt;

fn run() -> Result<(u64, f64), String> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or("usage: remote-get URL [--endpoint URL] [--allow-http]")?;
    let mut opts = StoreOptions::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--endpoint" => opts.endpoint = Some(args.next().ok_or("--endpoint needs a URL")?),
            "--allow-http" => opts.allow_http = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let u = RemoteUrl::parse(&url).map_err(|e| e.to_string())?;
    let store = Stores::new(opts).get(&u).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let start = Instant::now();
        let mut body = store.get(&u.path).await.map_err(|e| format!("{url}: GET: {e}"))?.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("{url}: at byte {n}: {e}"))?;
            n = n.saturating_add(chunk.len() as u64);
        }
        Ok((n, start.elapsed().as_secs_f64()))
    })
}

fn main() -> ExitCode {
    match run() {
        Ok((bytes, secs)) => {
            let mbs = if secs > 0.0 { bytes as f64 / 1e6 / secs } else { 0.0 };
            println!("{bytes} {secs:.3} {mbs:.0}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("remote-get: {e}");
            ExitCode::from(2)
        }
    }
}
