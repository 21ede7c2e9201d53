//! `tools/build-image.sh`: the OCI image of the CLI, built with umoci from
//! the binary and Debian's files. The test builds it from this build's
//! binary, unpacks it with umoci and runs its entrypoint as the image says
//! (the runtime config's args, user and environment) in a chroot of the
//! unpacked rootfs, mounted read-only in a private mount namespace as the
//! CronJob's pod has it (root is needed: it fails, never skips, without):
//! `verify`, `status` and a fleet `verify s3://…` against versitygw answer
//! exactly as the same binary outside the image. The image holds only what
//! it needs, and the name it is tagged with is the one the manifests run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use etcdsnap_testkit::s3::S3Server;
use serde_json::Value;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(c: &mut Command) -> Output {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(out.status.success(), "{c:?}: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

/// The unpacked image: its rootfs and runtime config (`config.json`).
struct Unpacked {
    rootfs: PathBuf,
    config: Value,
}

fn build_and_unpack(dir: &Path) -> Unpacked {
    let root = etcdsnap_testkit::root();
    let out = dir.join("image");
    ok(Command::new(root.join("tools/build-image.sh")).args([
        "--out",
        out.to_str().unwrap(),
        "--bin",
        env!("CARGO_BIN_EXE_etcdsnap"),
    ]));
    let bundle = dir.join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    let image = format!("{}:{}", out.join("oci").display(), env!("CARGO_PKG_VERSION"));
    ok(Command::new("umoci").args(["unpack", "--image", &image, bundle.to_str().unwrap()]));
    let config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    // The archive for `docker load` carries the name deploy/kubernetes/cronjob.yaml runs.
    let archive = out.join(format!("etcdsnap-{}.docker.tar", env!("CARGO_PKG_VERSION")));
    let manifest: Value =
        serde_json::from_slice(&ok(Command::new("tar").arg("-xOf").arg(&archive).arg("manifest.json")).stdout).unwrap();
    let cronjob = std::fs::read_to_string(root.join("deploy/kubernetes/cronjob.yaml")).unwrap();
    let image_line = cronjob.lines().find_map(|l| l.trim().strip_prefix("image: ")).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([image_line]));
    Unpacked { rootfs: bundle.join("rootfs"), config }
}

/// Runs the image's entrypoint with `args` (as `docker run IMAGE ARGS…`):
/// the root read-only, `binds` (host dir, path in the image) writable, the
/// config's user, environment (plus `env`) and working directory.
fn run_image(img: &Unpacked, binds: &[(&Path, &str)], env: &[(&str, String)], args: &[&str]) -> Output {
    let p = &img.config["process"];
    let (uid, gid) = (p["user"]["uid"].as_u64().unwrap(), p["user"]["gid"].as_u64().unwrap());
    let rootfs = img.rootfs.display().to_string();
    let mut script =
        format!("set -e; /usr/bin/mount --bind '{rootfs}' '{rootfs}'; /usr/bin/mount -o remount,bind,ro '{rootfs}'; ");
    for (host, inside) in binds {
        script.push_str(&format!("/usr/bin/mount --bind '{}' '{rootfs}{inside}'; ", host.display()));
    }
    script.push_str(&format!(
        "cd '{rootfs}{}'; exec /usr/sbin/chroot --userspec={uid}:{gid} '{rootfs}' \"$@\"",
        p["cwd"].as_str().unwrap()
    ));
    for (_, inside) in binds {
        std::fs::create_dir_all(format!("{rootfs}{inside}")).unwrap();
    }
    let entry: Vec<&str> = p["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mut c = Command::new("/usr/bin/unshare");
    c.args(["--mount", "--fork", "/bin/sh", "-c", &script, "sh"]).args(&entry).args(args).env_clear();
    for kv in p["env"].as_array().unwrap() {
        let (k, v) = kv.as_str().unwrap().split_once('=').unwrap();
        c.env(k, v);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.output().unwrap()
}

fn local(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn the_images_entrypoint_verifies_backups_like_the_binary_outside_it() {
    assert_eq!(
        text(&Command::new("id").arg("-u").output().unwrap().stdout).trim(),
        "0",
        "chroot and mount namespaces need root"
    );
    let dir = etcdsnap_testkit::scratch("oci_image");
    let img = build_and_unpack(&dir);
    let p = &img.config["process"];
    assert_eq!(p["args"], serde_json::json!(["/usr/local/bin/etcdsnap"]));
    assert!(
        p["user"]["uid"].as_u64().unwrap() > 0 && p["user"]["gid"].as_u64().unwrap() > 0,
        "non-root: {}",
        p["user"]
    );
    // Only the binary, what ldd says it loads, the CA bundle, the users and the provenance list.
    let mut files = BTreeSet::new();
    let mut stack = vec![img.rootfs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(format!("/{}", path.strip_prefix(&img.rootfs).unwrap().display()));
            }
        }
    }
    let ldd = text(&ok(Command::new("ldd").arg(env!("CARGO_BIN_EXE_etcdsnap"))).stdout);
    let mut want: BTreeSet<String> =
        ldd.split_whitespace().filter(|w| w.starts_with('/')).map(str::to_string).collect();
    want.extend(
        [
            "/usr/local/bin/etcdsnap",
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/passwd",
            "/etc/group",
            "/usr/share/doc/etcdsnap-image/packages.txt",
        ]
        .map(str::to_string),
    );
    assert_eq!(files, want);
    let packages = std::fs::read_to_string(img.rootfs.join("usr/share/doc/etcdsnap-image/packages.txt")).unwrap();
    assert!(packages.lines().any(|l| l.contains(" libc6:") && l.starts_with("/lib")), "{packages}");

    // A committed fixture and a damaged copy, verified in the image and outside it.
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let fixture = etcdsnap_testkit::testdata().join("etcd-3.5.35/snapshot.db");
    let mut bytes = std::fs::read(&fixture).unwrap();
    std::fs::write(data.join("snapshot.db"), &bytes).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(data.join("damaged.db"), &bytes).unwrap();
    // Owned by root, mode 0644: the image's user reads them.
    for (file, code) in [("snapshot.db", 0), ("damaged.db", 1)] {
        for args in [vec!["verify", "--json"], vec!["status", "--json", "--verify-trailer"]] {
            let inside_path = format!("/data/{file}");
            let host_path = data.join(file).display().to_string();
            let inside =
                run_image(&img, &[(&data, "/data")], &[], &[args.clone(), vec![inside_path.as_str()]].concat());
            let outside = local(&[args.clone(), vec![host_path.as_str()]].concat(), &[]);
            assert_eq!(inside.status.code(), Some(code), "{args:?} {file}: {}", text(&inside.stderr));
            assert_eq!(inside.status.code(), outside.status.code());
            assert_eq!(
                text(&inside.stdout).replace(&inside_path, &host_path),
                text(&outside.stdout),
                "{args:?} {file}"
            );
        }
    }

    // A fleet verify of a bucket from inside the image: the spool on a writable volume.
    let s3 = S3Server::start("oci_image_s3", "backups");
    s3.put("clusters/a/1.db", std::fs::read(&fixture).unwrap());
    s3.put("clusters/b/1.db", bytes);
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let user = |k: &str| u32::try_from(p["user"][k].as_u64().unwrap()).unwrap();
    std::os::unix::fs::chown(&spool, Some(user("uid")), Some(user("gid"))).unwrap();
    let now = "2030-01-01T00:00:00Z";
    let ep = s3.endpoint();
    let args = [
        "verify",
        "s3://backups/clusters/",
        "-r",
        "--group-by",
        "clusters/([^/]+)/",
        "--now",
        now,
        "--endpoint",
        &ep,
        "--allow-http",
        "--report-format",
        "jsonl",
    ];
    let inside = run_image(&img, &[(&spool, "/spool")], &s3.env(), &[&args[..], &["--spool-dir", "/spool"]].concat());
    let outside = local(&args, &s3.env());
    assert_eq!(inside.status.code(), Some(1), "one damaged backup: {}", text(&inside.stderr));
    let sorted = |o: &Output| {
        let mut r = etcdsnap_remote::jsonl::read(&mut std::io::BufReader::new(&o.stdout[..]), "stdout").unwrap();
        r.backups.sort_by(|a, b| a.url.cmp(&b.url));
        r
    };
    let report = sorted(&inside);
    assert_eq!(report, sorted(&outside));
    let states: Vec<&str> = report.backups.iter().map(|b| b.state.name()).collect();
    assert_eq!(states, ["valid", "problems"]);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "the spool is emptied");
}
