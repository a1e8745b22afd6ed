//! moto (an AWS API emulator) for the aws driver's tests: the server the test command starts
//! (`CHAOS_MOTO_URL`, by ci/test.sh), reset and rebuilt with the fixture stack
//! (ci/moto_stack.py) for each test. The tests share one server, so they take turns.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::process::Command;

pub struct Stack {
    pub url: String,
    /// What ci/moto_stack.py created (ids by name).
    pub ids: serde_json::Value,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn python() -> String {
    std::env::var("CHAOS_MOTO_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script(url: &str, args: &[&str]) -> String {
    let o = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/moto_stack.py"))
        .args(["--endpoint-url", url])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ci/moto_stack.py {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A fresh fixture stack in moto; `None` (and a line saying so) when no moto server is
/// running: plain `cargo test` skips the aws tests, `bash ci/test.sh` runs them.
pub fn stack(test: &str) -> Option<Stack> {
    let Ok(url) = std::env::var("CHAOS_MOTO_URL") else {
        eprintln!(
            "SKIPPED {test}: no moto server (CHAOS_MOTO_URL is unset); `bash ci/test.sh` installs and starts one"
        );
        return None;
    };
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let ids = serde_json::from_str(&script(&url, &["--reset"])).unwrap();
    Some(Stack {
        url,
        ids,
        _turn: turn,
    })
}

impl Stack {
    /// What faults change (ci/moto_stack.py --state).
    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&script(&self.url, &["--state"])).unwrap()
    }

    /// A target file for this stack in `dir`, the load going to `base_url`, with `extra`
    /// TOML lines at the top level (before the tables).
    pub fn target(&self, dir: &Path, base_url: &str, extra: &str) -> String {
        let p = dir.join("moto.toml");
        std::fs::write(
            &p,
            format!(
                r#"kind = "aws"
region = "eu-west-1"
account = "123456789012"
base_url = "{base_url}"
endpoint_url = "{}"
opt_in_tag = {{ key = "chaos", value = "allowed" }}
observe_every = "1s"
{extra}
[roles.app]
asg = "notes-moto"
[roles.db]
aurora_cluster = "notes-moto"
[roles.cache]
replication_group = "notes-moto"
security_groups = ["notes-moto-cache"]
"#,
                self.url
            ),
        )
        .unwrap();
        p.display().to_string()
    }

    /// Enforce IAM on moto from the next request on (`true`), or stop enforcing it
    /// (`POST /moto-api/reset-auth`: the count of requests left unauthenticated).
    pub fn enforce_iam(&self, on: bool) {
        let o = Command::new(python())
            .args([
                "-c",
                "import sys,urllib.request as u\n\
                 u.urlopen(u.Request(sys.argv[1] + '/moto-api/reset-auth', \
                 data=sys.argv[2].encode(), method='POST', \
                 headers={'Content-Type': 'text/plain'})).read()",
                &self.url,
                if on { "0" } else { "inf" },
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Run boto3 code against moto (`ec2`, `asg`, `rds`, `ids` are defined).
    pub fn boto(&self, code: &str) {
        let o = Command::new(python())
            .args([
                "-c",
                &format!(
                    "import boto3,json,sys\ns=boto3.session.Session(region_name='eu-west-1')\n\
                     c=lambda n: s.client(n, endpoint_url=sys.argv[1])\n\
                     ec2,asg,rds=c('ec2'),c('autoscaling'),c('rds')\nids=json.loads(sys.argv[2])\n{code}"
                ),
                &self.url,
                &self.ids.to_string(),
            ])
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// The credentials moto accepts, for a `chaos` child (never a developer's own).
pub fn creds(c: &mut Command) -> &mut Command {
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("RUST_LOG")
}
