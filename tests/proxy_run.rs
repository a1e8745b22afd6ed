//! A `local` target end to end: `chaos proxy up FILE` runs the fault proxy (a child process),
//! `chaos run` injects through it, confirms, renews the lease and reverts; killed with SIGKILL
//! and never rolled back, the fault heals by itself when its lease runs out. The proxy stands
//! in front of a real TCP server (an echo server on loopback); the load goes to a sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{chaos, http, lines, report, scenario_file, text, tmpdir, wait_applied};

/// An echo server on loopback (a thread per connection, for the test process's life).
fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn free() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

struct Local {
    file: String,
    control: String,
    listen: SocketAddr,
    proxy: Child,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
    }
}

/// A local target in `dir` (the load to `base_url`, one cache proxy in zone a in front of an
/// echo server, leases of `lease`) and its proxy, up.
fn local(dir: &Path, base_url: &str, lease: &str) -> Local {
    let (control, listen) = (free(), free());
    let file = dir.join("local.toml");
    std::fs::write(
        &file,
        format!(
            "kind = \"local\"\nbase_url = \"{base_url}\"\nproxy_control = \"{control}\"\n\
             lease = \"{lease}\"\n[proxies.cache]\nlisten = \"{listen}\"\nupstream = \"{}\"\n\
             zone = \"a\"\nrole = \"cache\"\n",
            echo()
        ),
    )
    .unwrap();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["proxy", "up", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    Local {
        file: file.display().to_string(),
        control: v["control_url"].as_str().unwrap().to_string(),
        listen,
        proxy,
    }
}

/// Whether a request through the proxy gets its echo within 500 ms.
fn answers(listen: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(listen) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    if s.write_all(b"ping").is_err() {
        return false;
    }
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

fn held(control: &str) -> Vec<String> {
    let v = http("GET", &format!("{control}/proxies"));
    v["proxies"][0]["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{} {}",
                f["fault"].as_str().unwrap(),
                f["by"].as_str().unwrap()
            )
        })
        .collect()
}

fn partition(dir: &Path, at: &str, dur: &str, secs: f64) -> String {
    scenario_file(
        dir,
        "cut.toml",
        20,
        secs,
        &format!(
            "[[faults]]\nname = \"cut\"\nkind = \"cache-partition\"\nat = \"{at}\"\nfor = \"{dur}\"\n\
             [slo]\nwhole = [\"p99 < 5s\"]"
        ),
    )
}

#[test]
fn a_run_on_a_local_target_partitions_the_cache_through_the_proxy_and_heals_it() {
    let (mut sb, urls) = common::cli::sandbox_urls();
    let dir = tmpdir("proxy-run");
    let l = local(&dir, urls["lb_url"].as_str().unwrap(), "3s");
    assert!(answers(l.listen), "the proxy does not pass traffic");
    // A second `chaos proxy up` of the same file (a hurried re-run): its addresses are taken,
    // exit 2 naming the proxy; the first keeps serving.
    let o = chaos(&["proxy", "up", &l.file]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("proxy cache: cannot listen on"), "{err}");
    assert!(answers(l.listen));
    let sc = partition(&dir, "1s", "6s", 9.0);
    // The plan names the proxy and every call, and changes nothing.
    let o = chaos(&["plan", &sc, "--target", &l.file]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("proxy cache (blackholed)"), "{out}");
    assert!(
        out.contains("PUT /proxies/cache/faults/partition?by="),
        "{out}"
    );
    assert!(held(&l.control).is_empty());
    let run_dir = dir.join("run");
    let run = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", &sc, "--target", &l.file, "--quiet", "--out"])
        .arg(&run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_applied(&run_dir.join("journal.jsonl"));
    assert!(!answers(l.listen), "the cache answers through a partition");
    // Held past its 3 s lease: the run renews it.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(held(&l.control).len(), 1, "{:?}", held(&l.control));
    let o = run.wait_with_output().unwrap();
    let _ = sb.kill();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(held(&l.control).is_empty());
    assert!(answers(l.listen), "not healed after the run");
    let steps: Vec<String> = lines(&run_dir.join("journal.jsonl"))
        .iter()
        .map(|r| r["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["intent", "applied", "confirmed", "reverted"]);
    let r = report(&run_dir);
    let ev: Vec<String> = r["timeline"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}: {} -> {}", e["what"], e["from"], e["to"]))
        .collect();
    assert!(
        ev.contains(&"\"proxy cache\": \"passing\" -> \"partition\"".to_string()),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"\"proxy cache\": \"partition\" -> \"passing\"".to_string()),
        "{ev:?}"
    );
    // No lease ran out during the run.
    let pe = http("GET", &format!("{}/events", l.control));
    assert!(
        !pe.as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "lease_expired"),
        "{pe}"
    );
}

#[test]
fn a_run_killed_mid_fault_and_never_rolled_back_heals_when_the_lease_runs_out() {
    let (mut sb, urls) = common::cli::sandbox_urls();
    let dir = tmpdir("proxy-kill");
    let l = local(&dir, urls["lb_url"].as_str().unwrap(), "2s");
    let sc = partition(&dir, "1s", "60s", 90.0);
    let run_dir = dir.join("run");
    let mut run = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["run", &sc, "--target", &l.file, "--quiet", "--out"])
        .arg(&run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_applied(&run_dir.join("journal.jsonl"));
    run.kill().unwrap();
    let _ = run.wait();
    let _ = sb.kill();
    let killed = Instant::now();
    assert_eq!(
        held(&l.control).len(),
        1,
        "the fault went with the run, not its lease"
    );
    assert!(!answers(l.listen));
    // Nobody runs `chaos rollback`: within the 2 s lease (and the proxy's 100 ms sweep).
    while !held(&l.control).is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "still held: {:?}",
            held(&l.control)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answers(l.listen), "not healed after the lease ran out");
    let pe = http("GET", &format!("{}/events", l.control));
    let expired: Vec<&serde_json::Value> = pe
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "lease_expired")
        .collect();
    assert_eq!(expired.len(), 1, "{pe}");
    assert!(expired[0]["by"].as_str().unwrap().ends_with(":cut"), "{pe}");
    // A rollback afterwards finds nothing left and says so without failing.
    let o = chaos(&["rollback", run_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

#[test]
fn bad_local_targets_and_a_missing_proxy_are_refused_with_exit_2() {
    let dir = tmpdir("proxy-bad");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "kind = \"local\"\nbase_url = \"http://127.0.0.1:9\"\nproxy_control = \"127.0.0.1:1\"\n\
         [proxies.cache]\nlisten = \"10.0.0.1:6379\"\nupstream = \"127.0.0.1\"\nrole = \"queue\"\n",
    )
    .unwrap();
    let o = chaos(&["proxy", "up", bad.to_str().unwrap()]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(err.contains("not host:port"), "{err}");
    assert!(err.contains("unknown role \"queue\""), "{err}");
    // A sandbox target is not a local one.
    let o = chaos(&["proxy", "up", "sandbox"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("kind \"local\""),
        "{}",
        text(&o.stderr)
    );
    // No proxy running where the file says: refused before any load, saying how to start it.
    let file = dir.join("local.toml");
    std::fs::write(
        &file,
        format!(
            "kind = \"local\"\nbase_url = \"http://127.0.0.1:9\"\nproxy_control = \"{}\"\n\
             [proxies.cache]\nlisten = \"{}\"\nupstream = \"127.0.0.1:6379\"\nrole = \"cache\"\n",
            free(),
            free()
        ),
    )
    .unwrap();
    let sc = partition(&dir, "1s", "2s", 4.0);
    let o = chaos(&["run", &sc, "--target", file.to_str().unwrap(), "--quiet"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("chaos proxy up"), "{err}");
}
