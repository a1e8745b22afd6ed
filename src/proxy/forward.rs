//! The proxy's data path: each proxy's listener (closed while `down` is held, bound again
//! after) and each connection forwarded both ways, with what the holds say applied to every
//! chunk — dropped in a blackhole, delayed in order, paced to a bandwidth, reset on a reset
//! or down. It never decides what is held: it reads [`super::Now`] from the proxy's watch.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Direction, Now, Proxy};

/// One proxy's listener: accept and forward; closed while `down` is held, bound again after.
pub(super) async fn serve(p: Arc<Proxy>, mut listener: Option<TcpListener>) {
    let mut now = p.now.subscribe();
    let mut conns = JoinSet::new();
    loop {
        let refuse = now.borrow_and_update().refuse;
        match (&listener, refuse) {
            (Some(_), true) => listener = None,
            (None, false) => match crate::sandbox::http::bind_addr(p.config.listen).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::error!("proxy {}: cannot listen again: {e}", p.config.name);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            _ => {}
        }
        let accept = async {
            match &listener {
                Some(l) => l.accept().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = accept => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    p.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    conns.spawn(connection(p.clone(), stream));
                }
                // Out of file descriptors, a connection aborted before accept: keep accepting,
                // without spinning.
                Err(e) => {
                    tracing::warn!("proxy {}: accept: {e}", p.config.name);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            r = now.changed() => {
                if r.is_err() {
                    return;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Chunks in flight per direction: the back-pressure bound of a delayed stream.
const IN_FLIGHT: usize = 64;
const CHUNK: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connection(p: Arc<Proxy>, client: TcpStream) {
    p.stats.active.fetch_add(1, Ordering::Relaxed);
    forward(&p, client).await;
    p.stats.active.fetch_sub(1, Ordering::Relaxed);
}

fn reset(p: &Proxy, s: &TcpStream) {
    let _ = s.set_zero_linger();
    p.stats.reset.fetch_add(1, Ordering::Relaxed);
}

async fn forward(p: &Arc<Proxy>, client: TcpStream) {
    let mut now = p.now.subscribe();
    let gen = now.borrow().kill_gen;
    if now.borrow().reset || now.borrow().refuse {
        reset(p, &client);
        return;
    }
    // During a blackhole nothing reaches the upstream: the client's bytes are dropped until it
    // heals (or the connection is given up).
    let mut buf = vec![0u8; CHUNK];
    let mut client = client;
    let tainted = std::sync::atomic::AtomicBool::new(false);
    loop {
        if !now.borrow().blackhole {
            break;
        }
        tokio::select! {
            r = client.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    p.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    tainted.store(true, Ordering::Relaxed);
                }
            },
            r = now.changed() => {
                if r.is_err() { return; }
                let (g, reset_now) = {
                    let n = now.borrow();
                    (n.kill_gen, n.reset)
                };
                if g != gen || reset_now {
                    reset(p, &client);
                    return;
                }
            }
        }
    }
    // Bytes were dropped: the stream has a hole, and the upstream would parse garbage. Reset
    // it as the partition heals (as a peer whose retransmissions timed out would).
    if tainted.load(Ordering::Relaxed) {
        reset(p, &client);
        return;
    }
    let upstream = now.borrow().upstream.clone();
    let server = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await {
        Ok(Ok(s)) => s,
        _ => {
            p.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
            reset(p, &client);
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let mut server = server;
    let killed = {
        let (cr, cw) = client.split();
        let (sr, sw) = server.split();
        let both = async {
            tokio::join!(
                pump(p, cr, sw, Direction::Up, &tainted),
                pump(p, sr, cw, Direction::Down, &tainted)
            )
        };
        // A reset or down, or a partition healing on a stream it dropped bytes of.
        let killed = async {
            loop {
                if now.changed().await.is_err() {
                    return std::future::pending::<()>().await;
                }
                let (g, blackhole) = {
                    let n = now.borrow();
                    (n.kill_gen, n.blackhole)
                };
                if g != gen || (!blackhole && tainted.load(Ordering::Relaxed)) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = both => false,
            () = killed => true,
        }
    };
    // A reset or down while it was open: both sides see a reset, not an orderly close.
    if killed {
        reset(p, &client);
        let _ = server.set_zero_linger();
    }
}

/// Forward one direction: read chunks, drop them during a blackhole, deliver each after its
/// delay (in order), at most the bandwidth. Without a delay and with nothing queued, a chunk
/// is written as soon as it is read (no queue, no timer: the proxy's fast path).
async fn pump<R, W>(
    p: &Proxy,
    mut rd: R,
    mut wr: W,
    dir: Direction,
    tainted: &std::sync::atomic::AtomicBool,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let now = p.now.subscribe();
    let counter = if dir == Direction::Up {
        &p.stats.bytes_up
    } else {
        &p.stats.bytes_down
    };
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; CHUNK];
    let mut eof = false;
    loop {
        if eof && queue.is_empty() {
            let _ = wr.shutdown().await;
            return;
        }
        let head = queue.front().map(|(due, _)| *due);
        let chunk = tokio::select! {
            biased;
            _ = async { tokio::time::sleep_until(head.unwrap_or_else(Instant::now)).await },
                if head.is_some() => queue.pop_front().map(|(_, b)| b),
            r = rd.read(&mut buf), if !eof && queue.len() < IN_FLIGHT => {
                let n = match r {
                    Ok(0) | Err(_) => {
                        eof = true;
                        continue;
                    }
                    Ok(n) => n,
                };
                let (blackhole, delay) = {
                    let st = now.borrow();
                    (st.blackhole, st.delay(dir))
                };
                if blackhole {
                    p.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
                    tainted.store(true, Ordering::Relaxed);
                    continue;
                }
                if delay.is_zero() && queue.is_empty() {
                    if wr.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    pace(&now, dir, n).await;
                    continue;
                }
                queue.push_back((Instant::now() + delay, buf[..n].to_vec()));
                None
            }
        };
        if let Some(bytes) = chunk {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
            counter.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            pace(&now, dir, bytes.len()).await;
        }
    }
}

/// After `n` bytes written, wait as long as the bandwidth limit (if any) says they take.
async fn pace(now: &watch::Receiver<Now>, dir: Direction, n: usize) {
    let bw = now.borrow().bandwidth(dir);
    if let Some(rate) = bw.filter(|r| *r > 0) {
        tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
    }
}
