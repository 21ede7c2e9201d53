//! `deploy/kubernetes/`: the manifests parse, say what the README says
//! (an Indexed Job of N pods, `--shard /N`, non-root, read-only root, a
//! ServiceAccount that may only `get` its credentials Secret, the image
//! `tools/build-image.sh` builds); the container's arguments are the CLI's
//! (every flag in `etcdsnap verify --help`), and run as written — N
//! processes with `JOB_COMPLETION_INDEX` and `JOB_NAME` set as the Job
//! controller sets them, against versitygw — the reports they put in the
//! bucket, merged by `report merge` reading the bucket, are the unsharded
//! run's; and a real kube-apiserver 1.37.2 accepts every manifest
//! in a server-side dry run (and refuses a broken one, so the dry run judges).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etcdsnap_testkit::kube::{service_account_keys, write_encryption_config, ApiserverConfig, KubeApiserver, Provider};
use etcdsnap_testkit::s3::S3Server;
use etcdsnap_testkit::{free_port, EtcdServer, EtcdVersion};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    etcdsnap_testkit::root().join("deploy/kubernetes")
}

/// Every document of every `*.yaml` under deploy/kubernetes/, by file.
fn manifests() -> BTreeMap<String, Vec<Value>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(deploy_dir()).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(".yaml"), "only YAML in deploy/kubernetes/: {name}");
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap_or_else(|e| panic!("{name}: {e}")))
            .collect();
        out.insert(name, docs);
    }
    out
}

fn one<'a>(all: &'a BTreeMap<String, Vec<Value>>, kind: &str) -> &'a Value {
    let found: Vec<&Value> = all.values().flatten().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The image the manifests run: `localhost/etcdsnap:<crate version>`.
fn built_image() -> String {
    format!("localhost/etcdsnap:{}", env!("CARGO_PKG_VERSION"))
}

#[test]
fn manifests_say_what_the_readme_says_and_their_arguments_are_the_clis() {
    let all = manifests();
    // kubectl apply -k applies every manifest but the example Secret.
    let kustomization = &all["kustomization.yaml"][0];
    let listed: BTreeSet<&str> = strs(&kustomization["resources"]).into_iter().collect();
    let files: BTreeSet<&str> =
        all.keys().map(String::as_str).filter(|f| !["kustomization.yaml", "secret.example.yaml"].contains(f)).collect();
    assert_eq!(listed, files);

    let cron = one(&all, "CronJob");
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    let n = job["completions"].as_u64().unwrap();
    assert_eq!(job["parallelism"].as_u64(), Some(n), "every shard at once");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    // Findings (exit 1) fail the index at once; a retry would find the same.
    let rule = &job["podFailurePolicy"]["rules"][0];
    assert_eq!((&rule["action"], &rule["onExitCodes"]["values"]), (&Value::from("FailIndex"), &serde_json::json!([1])));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"].as_str(), Some(built_image().as_str()), "the image tools/build-image.sh builds");
    let sc = &c["securityContext"];
    assert_eq!(
        (&sc["readOnlyRootFilesystem"], &sc["allowPrivilegeEscalation"]),
        (&Value::from(true), &Value::from(false))
    );
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    let args = strs(&c["args"]);
    assert_eq!(args[0], "verify");
    let shard = args.iter().position(|a| *a == "--shard").unwrap();
    assert_eq!(args[shard + 1], format!("/{n}"), "INDEX from JOB_COMPLETION_INDEX, COUNT = completions");
    // Every flag is one `etcdsnap verify --help` documents.
    let help = text(&Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(["verify", "--help"]).output().unwrap().stdout);
    // The flags of each option line: "  -j, --jobs <N>", "      --recursive".
    let flags: BTreeSet<&str> = help
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| {
            l.split(|c: char| c == ',' || c.is_whitespace()).take_while(|w| w.is_empty() || w.starts_with('-'))
        })
        .filter(|w| !w.is_empty())
        .collect();
    assert!(flags.contains("--group-by") && flags.contains("-j") && flags.contains("--jobs"), "{flags:?}");
    for a in args.iter().filter(|a| a.starts_with('-')) {
        assert!(flags.contains(a), "{a} is not a flag of etcdsnap verify: {flags:?}");
    }
    // Paths the arguments name are mounted; the root stays read-only.
    let mounts: Vec<&str> =
        c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    for flag in ["--spool-dir", "--expect-groups"] {
        let path = args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert!(mounts.iter().any(|m| path.starts_with(m)), "{flag} {path} is on a mounted volume");
    }
    assert!(mounts.contains(&"/tmp"), "TMPDIR on a volume");

    // RBAC: the pod's ServiceAccount may get its credentials Secret, nothing else.
    let sa = one(&all, "ServiceAccount");
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"]);
    let secret = one(&all, "Secret");
    let secret_name = secret["metadata"]["name"].as_str().unwrap();
    let refs: BTreeSet<&str> =
        c["env"].as_array().unwrap().iter().filter_map(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str()).collect();
    assert_eq!(refs, BTreeSet::from([secret_name]));
    let role = one(&all, "Role");
    assert_eq!(
        role["rules"],
        serde_json::json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret_name], "verbs": ["get"]}])
    );
    let binding = one(&all, "RoleBinding");
    assert_eq!(
        (&binding["roleRef"]["kind"], &binding["roleRef"]["name"]),
        (&Value::from("Role"), &role["metadata"]["name"])
    );
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "etcdsnap"}])
    );
    assert!(all
        .values()
        .flatten()
        .all(|d| d["kind"] == "Kustomization" || d["kind"] == "Namespace" || d["metadata"]["namespace"] == "etcdsnap"));
    assert!(!all.values().flatten().any(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding"));
}

/// Runs the CronJob's container arguments as written, as pod `index` of
/// the Job `job_name`: container paths mapped to `dir`, the test's S3
/// endpoint added, the environment the manifest and the Job controller give.
fn run_as_pod(s3: &S3Server, args: &[&str], dir: &Path, job_name: &str, index: Option<u32>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    for a in args {
        // The kubelet's $(VAR) expansion of the container's env (SHARD_INDEX: the pod's index annotation).
        let a = a.replace("$(JOB_NAME)", job_name);
        let a = match index {
            Some(i) => a.replace("$(SHARD_INDEX)", &i.to_string()),
            None => a,
        };
        c.arg(a.replacen("/etc/etcdsnap/", &format!("{}/", dir.display()), 1).replacen(
            "/spool",
            &dir.join("spool").display().to_string(),
            1,
        ));
    }
    c.args(["--endpoint", &s3.endpoint(), "--allow-http"]).env_remove("JOB_COMPLETION_INDEX").envs(s3.env());
    if let Some(i) = index {
        c.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    c.output().unwrap()
}

#[test]
fn the_cronjobs_arguments_run_as_its_pods_and_merge_to_the_unsharded_report() {
    let all = manifests();
    let job = &one(&all, "CronJob")["spec"]["jobTemplate"]["spec"];
    let n = job["completions"].as_u64().unwrap() as u32;
    let args = strs(&job["template"]["spec"]["containers"][0]["args"]);
    let url = args[1];
    let (bucket, prefix) = url.strip_prefix("s3://").unwrap().split_once('/').unwrap();
    let s3 = S3Server::start("deploy_kubernetes", bucket);
    let dir = etcdsnap_testkit::scratch("deploy_kubernetes_pods");
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    let expected = one(&all, "ConfigMap")["data"]["expected-clusters.txt"].as_str().unwrap();
    std::fs::write(dir.join("expected-clusters.txt"), expected).unwrap();
    let clusters: Vec<&str> = expected.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).collect();
    assert!(clusters.len() >= 3, "the example names three clusters");
    // The first cluster has fresh backups, the second only a two-day-old one, the third none.
    let snapshot = std::fs::read(EtcdVersion::V3_6_16.fixture_snapshot()).unwrap();
    let mut items = Vec::new();
    for h in 0..6 {
        items.push((format!("{prefix}{}/2026-12-05T{h:02}.db", clusters[0]), snapshot.clone()));
    }
    let stale = format!("{prefix}{}/2026-12-03T00.db", clusters[1]);
    items.push((stale.clone(), snapshot));
    s3.put_many(items);
    let two_days = SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options().write(true).open(s3.object_file(&stale)).unwrap().set_modified(two_days).unwrap();
    // The Job the CronJob controller would have made this minute.
    let minutes = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 60 + 1;
    let job_name = format!("etcdsnap-fleet-verify-{minutes}");

    // Each pod puts its report where the manifest says, under the Job's name.
    let env = &job["template"]["spec"]["containers"][0]["env"];
    let shard_index = env.as_array().unwrap().iter().find(|e| e["name"] == "SHARD_INDEX").unwrap();
    assert_eq!(
        shard_index["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']",
        "the index the Job controller gives each pod"
    );
    let report_url = args[args.iter().position(|a| *a == "--jsonl").unwrap() + 1];
    let reports = format!("s3://{bucket}/reports/{job_name}/");
    assert_eq!(report_url.replace("$(JOB_NAME)", &job_name), format!("{reports}shard-$(SHARD_INDEX).jsonl"));
    assert!(!reports.starts_with(url), "the reports are not under the verified prefix");
    let mut logs = Vec::new();
    for i in 0..n {
        let out = run_as_pod(&s3, &args, &dir, &job_name, Some(i));
        assert!(matches!(out.status.code(), Some(0 | 1)), "pod {i}: {}", text(&out.stderr));
        let key = format!("reports/{job_name}/shard-{i}.jsonl");
        let put = std::fs::read(s3.object_file(&key)).unwrap_or_else(|e| panic!("pod {i} put no {key}: {e}"));
        logs.push((out.stdout, put));
    }
    // As the README says: merge what the pods put in the bucket, by prefix.
    let mut merge = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    merge.args(["report", "merge", &reports, "--endpoint", &s3.endpoint(), "--allow-http"]).envs(s3.env());
    let merged = merge.output().unwrap();
    assert_eq!(merged.status.code(), Some(1), "a stale and a missing cluster: {}", text(&merged.stderr));
    let flags_with_values = ["--shard", "--jsonl"];
    let whole_args: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !flags_with_values.contains(a) && (*i == 0 || !flags_with_values.contains(&args[i - 1])))
        .map(|(_, a)| *a)
        .collect();
    let whole = run_as_pod(&s3, &whole_args, &dir, &job_name, None);
    assert_eq!(whole.status.code(), Some(1));
    // The unsharded run streams backups as they finish: compare as reports.
    let sorted = |b: &[u8]| {
        let mut r = etcdsnap_remote::jsonl::read(&mut std::io::BufReader::new(b), "stdout").unwrap();
        r.backups.sort_by(|a, b| a.url.cmp(&b.url));
        r
    };
    let (m, w) = (sorted(&merged.stdout), sorted(&whole.stdout));
    assert_eq!(m, w);
    // Each pod's log (streamed) holds the report it put in the bucket.
    for (i, (log, put)) in logs.iter().enumerate() {
        assert_eq!(sorted(log), sorted(put), "pod {i}");
        assert_eq!(sorted(put).summary.shard, Some(format!("{i}/{n}")));
    }
    assert_eq!(m.summary.objective.now, chrono_minutes(minutes), "the clock is the Job's scheduled time");
    let findings: BTreeMap<&str, Option<&str>> =
        m.clusters.iter().map(|c| (c.cluster.as_str(), c.finding.map(|f| f.name()))).collect();
    let want: BTreeMap<&str, Option<&str>> =
        [(clusters[0], None), (clusters[1], Some("stale")), (clusters[2], Some("missing"))].into_iter().collect();
    assert_eq!(findings, want);
    assert_eq!((m.summary.objects, m.summary.valid), (7, 7));
}

fn chrono_minutes(minutes: u64) -> String {
    let out =
        Command::new("date").args(["-u", "-d", &format!("@{}", minutes * 60), "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    text(&out.stdout).trim().to_string()
}

/// `{"op": op, "object": doc}` for every document of the kustomization's resources, in its order.
fn ops(all: &BTreeMap<String, Vec<Value>>, op: &str) -> Vec<Value> {
    strs(&all["kustomization.yaml"][0]["resources"])
        .into_iter()
        .flat_map(|f| all[f].iter())
        .map(|d| serde_json::json!({"op": op, "object": d}))
        .collect()
}

fn name_of(o: &Value) -> String {
    format!("{}/{}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())
}

#[test]
fn a_real_kube_apiserver_accepts_every_manifest_in_a_server_side_dry_run() {
    let dir = etcdsnap_testkit::scratch("deploy_kubernetes_apiserver");
    let etcd = EtcdServer::start(EtcdVersion::V3_6_16, &dir.join("etcd"), free_port(), free_port());
    let enc = dir.join("encryption.yaml");
    write_encryption_config(&enc, &[Provider::Identity]);
    let config = ApiserverConfig {
        etcd: etcd.endpoint(),
        etcd_prefix: "/registry".into(),
        port: free_port(),
        encryption_config: enc,
        sa_keys: service_account_keys(&dir.join("sa")),
        dir: dir.join("apiserver"),
        compaction_interval: "0s".into(),
    };
    let api = KubeApiserver::start(&config);
    let all = manifests();
    // The namespace for real (the others need it to exist), then every manifest
    // as a server-side dry run: defaulted, validated and admitted, not stored.
    let ns: Vec<Value> =
        all["namespace.yaml"].iter().map(|d| serde_json::json!({"op": "create", "object": d})).collect();
    api.apply(&ns);
    let mut dry = ops(&all, "dry-run-create");
    dry.retain(|o| o["object"]["kind"] != "Namespace");
    dry.extend(all["secret.example.yaml"].iter().map(|d| serde_json::json!({"op": "dry-run-create", "object": d})));
    let accepted = api.try_apply(&dry).unwrap_or_else(|e| panic!("refused: {e}"));
    let names: Vec<String> = accepted.iter().map(name_of).collect();
    assert_eq!(
        names,
        [
            "ServiceAccount/etcdsnap-fleet-verify",
            "Role/etcdsnap-fleet-verify",
            "RoleBinding/etcdsnap-fleet-verify",
            "ConfigMap/etcdsnap-expected-clusters",
            "CronJob/etcdsnap-fleet-verify",
            "Secret/etcdsnap-fleet-credentials",
        ]
    );
    // What the server made of the CronJob: the manifest's pod, defaulted, not altered.
    let cron = accepted.iter().find(|o| o["kind"] == "CronJob").unwrap();
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert_eq!(
        (&job["completionMode"], &job["completions"], &job["backoffLimitPerIndex"]),
        (&Value::from("Indexed"), &Value::from(4), &Value::from(1))
    );
    let c = &job["template"]["spec"]["containers"][0];
    assert_eq!(
        c["args"],
        one(&all, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    );
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    // The dry run judges: a FailIndex rule without backoffLimitPerIndex is refused.
    let mut broken = one(&all, "CronJob").clone();
    broken["spec"]["jobTemplate"]["spec"].as_object_mut().unwrap().remove("backoffLimitPerIndex");
    let err = api.try_apply(&[serde_json::json!({"op": "dry-run-create", "object": broken})]).unwrap_err();
    assert!(err.contains("backoffLimitPerIndex"), "{err}");
    // Nothing but the namespace was stored.
    for res in ["batch/v1/cronjobs@etcdsnap", "rbac.authorization.k8s.io/v1/roles@etcdsnap", "v1/secrets@etcdsnap"] {
        assert_eq!(api.dump(&[res]), Vec::<Value>::new(), "{res}");
    }
}
