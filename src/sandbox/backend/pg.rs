//! The notes app's PostgreSQL backend: a multi-host URL tried host by host (each bounded on its
//! own), one pipelined connection per node shared by its calls, connected once for the calls
//! that wait on it. Never retries a call: the next one connects again.

use std::sync::Arc;

use tokio::sync::Mutex;

use super::{bounded, CALL_TIMEOUT, DB_RECONNECT_AFTER, HOST_CONNECT_TIMEOUT};

/// PostgreSQL, by a URL such as
/// `postgres://postgres@127.0.0.1:15410,127.0.0.1:15420/postgres?target_session_attrs=read-write`.
pub struct Pg {
    /// One configuration per host of the URL, in its order (each tried in turn when
    /// connecting, so a host that hangs cannot take the others' turn).
    hosts: Vec<(String, tokio_postgres::Config)>,
    /// `load_balance_hosts=random`: the hosts in a new random order at each connection.
    shuffle: bool,
    conn: Mutex<PgConn>,
}

/// The node's connection — shared by its requests: tokio-postgres pipelines concurrent
/// queries on it — or when the last attempt to connect failed.
#[derive(Default)]
struct PgConn {
    open: Option<Arc<tokio_postgres::Client>>,
    failed_at: Option<std::time::Instant>,
}

impl Pg {
    /// A client for `url` (checked now, connected at the first call).
    pub fn new(url: &str) -> Result<Pg, String> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("database URL `{url}`: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(HOST_CONNECT_TIMEOUT);
        }
        Ok(Pg {
            hosts: per_host(&config).map_err(|e| format!("database URL `{url}`: {e}"))?,
            shuffle: config.get_load_balance_hosts()
                == tokio_postgres::config::LoadBalanceHosts::Random,
            conn: Mutex::new(PgConn::default()),
        })
    }

    /// A new connection: each host in the URL's order, each bounded by
    /// [`HOST_CONNECT_TIMEOUT`]; the first that accepts (and, with
    /// `target_session_attrs=read-write`, takes writes) wins.
    async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        String,
    > {
        let mut order: Vec<&(String, tokio_postgres::Config)> = self.hosts.iter().collect();
        if self.shuffle {
            use rand::seq::SliceRandom;
            order.shuffle(&mut rand::rng());
        }
        let mut why = Vec::new();
        for (at, config) in order {
            match bounded(
                at,
                HOST_CONNECT_TIMEOUT,
                config.connect(tokio_postgres::NoTls),
            )
            .await
            {
                Ok(c) => return Ok(c),
                Err(e) => why.push(e),
            }
        }
        Err(format!("connecting to the database: {}", why.join("; ")))
    }

    /// The notes table, created if missing (the first call of a node that starts).
    pub async fn migrate(&self) -> Result<(), String> {
        self.with(|c| {
            Box::pin(async move {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS notes (id bigserial PRIMARY KEY, text text NOT NULL, \
                     at timestamptz NOT NULL DEFAULT now())",
                )
                .await
                .map(|_| ())
            })
        })
        .await
    }

    /// Run `f` on the connection, connecting first if there is none; a failed call drops the
    /// connection, so the next one connects again (to the new primary after a failover).
    async fn with<T>(
        &self,
        f: impl for<'c> FnOnce(
            &'c tokio_postgres::Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
        >,
    ) -> Result<T, String> {
        let c = {
            // Held while connecting, so the calls that wait share one attempt: they get its
            // connection, or fail at once if it failed.
            let mut slot = self.conn.lock().await;
            match slot.open.as_ref() {
                Some(c) if !c.is_closed() => c.clone(),
                _ => {
                    if slot
                        .failed_at
                        .is_some_and(|t| t.elapsed() < DB_RECONNECT_AFTER)
                    {
                        return Err("the database: not connected (reconnecting)".into());
                    }
                    let (client, conn) = match self.connect().await {
                        Ok(c) => c,
                        Err(e) => {
                            slot.failed_at = Some(std::time::Instant::now());
                            return Err(e);
                        }
                    };
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    let c = Arc::new(client);
                    *slot = PgConn {
                        open: Some(c.clone()),
                        failed_at: None,
                    };
                    c
                }
            }
        };
        let r = bounded("the database", CALL_TIMEOUT, f(&c)).await;
        if r.is_err() {
            let mut slot = self.conn.lock().await;
            if slot.open.as_ref().is_some_and(|s| Arc::ptr_eq(s, &c)) {
                slot.open = None;
            }
        }
        r
    }

    pub async fn write(&self, text: &str) -> Result<u64, String> {
        let text = text.to_string();
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one(
                        "INSERT INTO notes (text) VALUES ($1) RETURNING id",
                        &[&text],
                    )
                    .await?;
                Ok(row.get::<_, i64>(0) as u64)
            })
        })
        .await
    }

    pub async fn read(&self, id: u64) -> Result<Option<String>, String> {
        let id = id as i64;
        self.with(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT text FROM notes WHERE id = $1", &[&id])
                    .await?;
                Ok(row.map(|r| r.get::<_, String>(0)))
            })
        })
        .await
    }

    pub async fn recent(&self, n: usize) -> Result<Vec<(u64, String)>, String> {
        let n = n as i64;
        self.with(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id, text FROM notes ORDER BY id DESC LIMIT $1",
                        &[&n],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1)))
                    .collect())
            })
        })
        .await
    }
}

/// `config` split into one configuration per host (each with every setting of the URL; its
/// ports matched as libpq does: one per host, or one for all), each named `host:port`.
fn per_host(
    config: &tokio_postgres::Config,
) -> Result<Vec<(String, tokio_postgres::Config)>, String> {
    use tokio_postgres::config::Host;
    let (hosts, addrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    let n = hosts.len().max(addrs.len());
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(format!(
            "{} hosts but {} hostaddrs",
            hosts.len(),
            addrs.len()
        ));
    }
    if ports.len() > 1 && ports.len() != n {
        return Err(format!(
            "{} ports for {n} hosts (one port, or one per host)",
            ports.len()
        ));
    }
    if n <= 1 {
        let at = match (hosts.first(), addrs.first()) {
            (Some(Host::Tcp(h)), _) => format!("{h}:{}", ports.first().copied().unwrap_or(5432)),
            (Some(Host::Unix(p)), _) => p.display().to_string(),
            (None, Some(a)) => format!("{a}:{}", ports.first().copied().unwrap_or(5432)),
            (None, None) => "the database".to_string(),
        };
        return Ok(vec![(at, config.clone())]);
    }
    Ok((0..n)
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let mut c = tokio_postgres::Config::new();
            let mut at = String::new();
            if let Some(h) = hosts.get(i) {
                match h {
                    Host::Tcp(h) => {
                        c.host(h);
                        at = format!("{h}:{port}");
                    }
                    Host::Unix(p) => {
                        c.host_path(p);
                        at = p.display().to_string();
                    }
                }
            }
            if let Some(a) = addrs.get(i) {
                c.hostaddr(*a);
                if at.is_empty() {
                    at = format!("{a}:{port}");
                }
            }
            c.port(port);
            copy_settings(config, &mut c);
            (at, c)
        })
        .collect())
}

/// Every setting of `from` but its hosts, hostaddrs, ports and host load balancing.
fn copy_settings(from: &tokio_postgres::Config, c: &mut tokio_postgres::Config) {
    if let Some(u) = from.get_user() {
        c.user(u);
    }
    if let Some(p) = from.get_password() {
        c.password(p);
    }
    if let Some(d) = from.get_dbname() {
        c.dbname(d);
    }
    if let Some(o) = from.get_options() {
        c.options(o);
    }
    if let Some(a) = from.get_application_name() {
        c.application_name(a);
    }
    if let Some(t) = from.get_connect_timeout() {
        c.connect_timeout(*t);
    }
    if let Some(t) = from.get_tcp_user_timeout() {
        c.tcp_user_timeout(*t);
    }
    c.ssl_mode(from.get_ssl_mode());
    c.ssl_negotiation(from.get_ssl_negotiation());
    c.channel_binding(from.get_channel_binding());
    c.target_session_attrs(from.get_target_session_attrs());
    c.keepalives(from.get_keepalives());
    c.keepalives_idle(from.get_keepalives_idle());
    if let Some(i) = from.get_keepalives_interval() {
        c.keepalives_interval(i);
    }
    if let Some(r) = from.get_keepalives_retries() {
        c.keepalives_retries(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_is_tried_host_by_host_with_every_setting() {
        let url = "postgres://app:pw@127.0.0.1:15412,127.0.0.1:15422/notes?target_session_attrs=\
                   read-write&application_name=chaos&connect_timeout=3&options=-c%20x%3Dy\
                   &keepalives=0&keepalives_idle=7&tcp_user_timeout=9&channel_binding=disable\
                   &sslmode=disable";
        let config: tokio_postgres::Config = url.parse().unwrap();
        let hosts = per_host(&config).unwrap();
        let names: Vec<&str> = hosts.iter().map(|(at, _)| at.as_str()).collect();
        assert_eq!(names, ["127.0.0.1:15412", "127.0.0.1:15422"]);
        // Each is the URL with one host: the same settings, field by field (Debug shows all).
        for (i, (_, c)) in hosts.iter().enumerate() {
            let port = [15412, 15422][i];
            let one: tokio_postgres::Config = url
                .replace(
                    "127.0.0.1:15412,127.0.0.1:15422",
                    &format!("127.0.0.1:{port}"),
                )
                .parse()
                .unwrap();
            assert_eq!(format!("{c:?}"), format!("{one:?}"));
        }

        let one_port: tokio_postgres::Config = "host=a,b port=7000 user=u".parse().unwrap();
        let hosts = per_host(&one_port).unwrap();
        assert_eq!(hosts[0].0, "a:7000");
        assert_eq!(hosts[1].0, "b:7000");
        assert_eq!(per_host(&"host=a".parse().unwrap()).unwrap()[0].0, "a:5432");
        let addrs: tokio_postgres::Config = "host=a,b hostaddr=127.0.0.1,127.0.0.2 port=1,2"
            .parse()
            .unwrap();
        let hosts = per_host(&addrs).unwrap();
        assert_eq!(
            hosts[1].1.get_hostaddrs(),
            ["127.0.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(hosts[1].1.get_ports(), [2]);
        let bad: tokio_postgres::Config = "host=a,b,c port=1,2".parse().unwrap();
        assert_eq!(
            per_host(&bad).unwrap_err(),
            "2 ports for 3 hosts (one port, or one per host)"
        );
        assert!(Pg::new("postgres://u@a:1,b:2,c/db").is_ok());
    }
}
