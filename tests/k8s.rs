//! The Kubernetes manifests of sharded runs (`ci/k8s/`), validated offline against the
//! Kubernetes schemas with `kubernetes-validate` (PyPI; `bash ci/test.sh` installs it and sets
//! `CHAOS_K8S_VALIDATE`), strictly: an unknown field is an error. A broken copy is refused,
//! so the check can fail.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

fn validator() -> Option<String> {
    let v = std::env::var("CHAOS_K8S_VALIDATE").ok();
    if v.is_none() {
        eprintln!(
            "SKIPPED: no kubernetes-validate (CHAOS_K8S_VALIDATE is unset); `bash ci/test.sh` installs it"
        );
    }
    v
}

fn validate(exe: &str, files: &[&Path]) -> (bool, String) {
    let o = Command::new(exe)
        .args(["--strict", "--kubernetes-version", "1.30.0"])
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn the_sharded_run_manifests_are_valid_kubernetes_objects() {
    let Some(exe) = validator() else { return };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/k8s");
    let files: Vec<std::path::PathBuf> = [
        "volume.yaml",
        "shards-job.yaml",
        "merge-job.yaml",
        "conductor-service.yaml",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let (ok, out) = validate(&exe, &refs);
    assert!(ok, "{out}");
    assert_eq!(out.matches("passed for resource").count(), 4, "{out}");
    // The shard Job is Indexed, one pod per shard, and the shard count is said once more in
    // SHARDS: the three agree.
    let job = std::fs::read_to_string(&files[1]).unwrap();
    assert!(job.contains("completionMode: Indexed"));
    assert!(job.contains("completions: 3") && job.contains("parallelism: 3"));
    assert!(job.contains("value: \"3\""));
    assert!(job.contains("--shard \"$JOB_COMPLETION_INDEX/$SHARDS\""));
    // The conductor's feed: pod 0 by its name under the headless Service the pods' subdomain
    // names, on the port the Service and the container open.
    let svc = std::fs::read_to_string(&files[3]).unwrap();
    assert!(job.contains("subdomain: chaos-shards") && svc.contains("name: chaos-shards"));
    assert!(job.contains("--conductor chaos-shards-0.chaos-shards:7070"));
    assert!(job.contains("containerPort: 7070") && svc.contains("port: 7070"));
    // A typo in a field is refused: the validation can fail.
    let bad = std::env::temp_dir().join(format!("chaos-k8s-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, job.replace("parallelism: 3", "paralelism: 3")).unwrap();
    let (ok, out) = validate(&exe, &[&bad]);
    assert!(!ok && out.contains("paralelism"), "{out}");
    let _ = std::fs::remove_file(&bad);
}
