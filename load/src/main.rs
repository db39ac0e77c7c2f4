//! Load tests for a release build of `foolock serve`, on loopback only. Each scenario starts a
//! server of its own, drives it, prints its figures and says PASS or FAIL:
//!
//! 1. keep-alive: many clients, each on one kept-alive connection, acquire, renew, read and
//!    release their own job as fast as they can: no errors, no 5xx.
//! 2. stalled: hundreds of connections stop in the middle of their request head while a few
//!    well-behaved clients renew (a new connection per renewal, as the CLI does): every
//!    renewal is answered.
//! 3. memory: a million distinct job names read with GET, then a hundred thousand acquired
//!    and released: the server's resident memory ends within 2 MiB of where it started.
//!
//! ```text
//! load [--quick] [--bin PATH] [--only keep-alive|stalled|memory]
//! ```
//! `--quick` runs the short form tests/run.sh uses; the full form is the one README
//! "Reliability" reports. PATH defaults to target/release/foolock.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one request may take before it counts as unanswered.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

struct Sizes {
    clients: usize,
    keep_alive_for: Duration,
    stalled: usize,
    renewers: usize,
    stalled_for: Duration,
    distinct_gets: usize,
    acquired: usize,
}

const FULL: Sizes = Sizes {
    clients: 1000,
    keep_alive_for: Duration::from_secs(20),
    stalled: 500,
    renewers: 16,
    stalled_for: Duration::from_secs(15),
    distinct_gets: 1_000_000,
    acquired: 100_000,
};

const QUICK: Sizes = Sizes {
    clients: 200,
    keep_alive_for: Duration::from_secs(5),
    stalled: 200,
    renewers: 16,
    stalled_for: Duration::from_secs(12),
    distinct_gets: 100_000,
    acquired: 10_000,
};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut sizes = &FULL;
    let mut bin = PathBuf::from("target/release/foolock");
    let mut only: Option<String> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => sizes = &QUICK,
            "--bin" => bin = args.next().map(PathBuf::from).unwrap_or(bin),
            "--only" => only = args.next(),
            _ => {
                eprintln!("usage: load [--quick] [--bin PATH] [--only keep-alive|stalled|memory]");
                return ExitCode::from(2);
            }
        }
    }
    if !bin.is_file() {
        eprintln!(
            "load: {} not found; build it with `cargo build --release`",
            bin.display()
        );
        return ExitCode::from(2);
    }
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let mut passed = true;
    runtime.block_on(async {
        if run("keep-alive") {
            passed &= keep_alive(&bin, sizes).await;
        }
        if run("stalled") {
            passed &= stalled(&bin, sizes).await;
        }
        if run("memory") {
            passed &= memory(&bin, sizes).await;
        }
    });
    if passed {
        println!("load: all scenarios passed");
        ExitCode::SUCCESS
    } else {
        println!("load: FAILED");
        ExitCode::FAILURE
    }
}

/// Scenario 1.
async fn keep_alive(bin: &Path, sizes: &Sizes) -> bool {
    let server = Server::start(bin);
    let addr = server.addr;
    let mut conns = Vec::with_capacity(sizes.clients);
    for _ in 0..sizes.clients {
        match Conn::open(addr).await {
            Ok(c) => conns.push(c),
            Err(e) => {
                println!(
                    "keep-alive: FAIL: could not open {} connections: {e}",
                    sizes.clients
                );
                return false;
            }
        }
    }
    let start = Instant::now();
    let deadline = start + sizes.keep_alive_for;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let (client, job) = (format!("c{i}"), format!("load-{i}"));
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    let (method, target) = match n % 10 {
                        0 => ("DELETE", format!("/lock?client={client}&job={job}")),
                        1 | 4 | 7 => ("GET", format!("/lock?job={job}")),
                        _ => ("POST", format!("/lock?client={client}&job={job}&ttl=1m")),
                    };
                    let t = Instant::now();
                    match conn.send(method, &target).await {
                        Ok(200) => tally.ok(t.elapsed()),
                        Ok(status) => {
                            tally.bad_status(status);
                            if status >= 500 {
                                break;
                            }
                        }
                        Err(_) => {
                            tally.errors += 1;
                            break;
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for t in tasks {
        all.merge(t.await.expect("client task"));
    }
    let elapsed = start.elapsed();
    let pass = all.errors == 0 && all.server_errors == 0 && all.other_status == 0;
    println!(
        "keep-alive: {} clients for {:.0} s: {} requests ({:.0}/s), latency p50 {} p99 {} max {}; \
         errors {}, 5xx {}, other non-200 {}: {}",
        sizes.clients,
        elapsed.as_secs_f64(),
        all.latencies.len(),
        all.latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(all.percentile(50.0)),
        ms(all.percentile(99.0)),
        ms(all.percentile(100.0)),
        all.errors,
        all.server_errors,
        all.other_status,
        verdict(pass),
    );
    pass
}

/// Scenario 2.
async fn stalled(bin: &Path, sizes: &Sizes) -> bool {
    let server = Server::start(bin);
    let addr = server.addr;
    let start = Instant::now();
    let closed = Arc::new(AtomicU64::new(0));
    let mut stalled_opened = 0;
    let mut watchers = Vec::new();
    for i in 0..sizes.stalled {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            continue;
        };
        // A request head that never ends.
        let partial = format!("POST /lock?client=s{i}&job=stall HTTP/1.1\r\nHost: load\r\n");
        if stream.write_all(partial.as_bytes()).await.is_err() {
            continue;
        }
        stalled_opened += 1;
        let closed = closed.clone();
        watchers.push(tokio::spawn(async move {
            let mut buf = [0u8; 512];
            // Ends when the server answers (408) or closes; the time says when.
            let _ = stream.read(&mut buf).await;
            closed.fetch_add(1, Ordering::Relaxed);
            start.elapsed()
        }));
    }
    let deadline = Instant::now() + sizes.stalled_for;
    let renewers: Vec<_> = (0..sizes.renewers)
        .map(|i| {
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let target = format!("/lock?client=r{i}&job=renew-{i}&ttl=30s");
                while Instant::now() < deadline {
                    let t = Instant::now();
                    // A new connection each time, as `foolock lock` renews.
                    let reply = match Conn::open(addr).await {
                        Ok(mut conn) => conn.send("POST", &target).await,
                        Err(e) => Err(e),
                    };
                    match reply {
                        Ok(200) => tally.ok(t.elapsed()),
                        Ok(status) => tally.bad_status(status),
                        Err(_) => tally.errors += 1,
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                tally
            })
        })
        .collect();
    let mut all = Tally::default();
    for r in renewers {
        all.merge(r.await.expect("renewer"));
    }
    let closed_by_then = closed.load(Ordering::Relaxed);
    let mut close_times: Vec<Duration> = Vec::new();
    for w in watchers {
        if w.is_finished()
            && let Ok(t) = w.await
        {
            close_times.push(t);
        } else {
            // Still open: dropping the task drops the connection.
        }
    }
    close_times.sort();
    let pass = all.errors == 0 && all.server_errors == 0 && all.other_status == 0;
    let closing = match (close_times.first(), close_times.last()) {
        (Some(first), Some(last)) => format!(
            "the server closed {closed_by_then} of them, {:.1}–{:.1} s after they stalled",
            first.as_secs_f64(),
            last.as_secs_f64()
        ),
        _ => "the server closed none of them".to_owned(),
    };
    println!(
        "stalled: {stalled_opened} connections stalled mid-header for {:.0} s ({closing}); \
         {} renewers on new connections: {} renewals answered, latency p50 {} p99 {} max {}; \
         errors {}, 5xx {}, other non-200 {}: {}",
        sizes.stalled_for.as_secs_f64(),
        sizes.renewers,
        all.latencies.len(),
        ms(all.percentile(50.0)),
        ms(all.percentile(99.0)),
        ms(all.percentile(100.0)),
        all.errors,
        all.server_errors,
        all.other_status,
        verdict(pass),
    );
    pass
}

/// Scenario 3.
async fn memory(bin: &Path, sizes: &Sizes) -> bool {
    const CONNS: usize = 32;
    let server = Server::start(bin);
    let addr = server.addr;
    let pid = server.child.id();
    // Warm up: the runtime's threads, buffers and the allocator's arenas reach their working
    // size before the baseline is taken.
    if let Err(e) = churn(
        addr,
        CONNS,
        "warm",
        sizes.distinct_gets / 50,
        sizes.acquired / 50,
    )
    .await
    {
        println!("memory: FAIL: warm-up: {e}");
        return false;
    }
    settle().await;
    let before = rss_kib(pid);
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let start = Instant::now();
    let result = churn(addr, CONNS, "mem", sizes.distinct_gets, sizes.acquired).await;
    let took = start.elapsed();
    settle().await;
    sampler.abort();
    let after = rss_kib(pid);
    let grew = after as i64 - before as i64;
    let pass = result.is_ok() && grew.abs() <= 2048;
    let problem = result.err().map_or(String::new(), |e| format!(" ({e})"));
    println!(
        "memory: {} distinct jobs read with GET, {} acquired and released, in {:.0} s: \
         RSS {} KiB before, {} KiB at peak, {} KiB after ({grew:+} KiB){problem}: {}",
        sizes.distinct_gets,
        sizes.acquired,
        took.as_secs_f64(),
        before,
        peak.load(Ordering::Relaxed),
        after,
        verdict(pass),
    );
    pass
}

/// Reads `gets` distinct jobs, then acquires and releases `acquired` others, over `conns`
/// kept-alive connections; any reply but 200 is an error.
async fn churn(
    addr: SocketAddr,
    conns: usize,
    prefix: &'static str,
    gets: usize,
    acquired: usize,
) -> Result<(), String> {
    let tasks: Vec<_> = (0..conns)
        .map(|k| {
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await.map_err(|e| e.to_string())?;
                let expect = |what: &str, reply: std::io::Result<u16>| match reply {
                    Ok(200) => Ok(()),
                    Ok(status) => Err(format!("{what}: HTTP {status}")),
                    Err(e) => Err(format!("{what}: {e}")),
                };
                for i in (k..gets).step_by(conns) {
                    let target = format!("/lock?job={prefix}-read-{i:07}");
                    expect("GET", conn.send("GET", &target).await)?;
                }
                for i in (k..acquired).step_by(conns) {
                    let job = format!("{prefix}-held-{i:06}");
                    let acquire = format!("/lock?client=m{k}&job={job}&ttl=1m");
                    expect("acquire", conn.send("POST", &acquire).await)?;
                    let release = format!("/lock?client=m{k}&job={job}");
                    expect("release", conn.send("DELETE", &release).await)?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// Lets lazy writes and freed memory settle before a reading.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

/// Requests that got an answer, and those that did not.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: u64,
    server_errors: u64,
    other_status: u64,
}

impl Tally {
    fn ok(&mut self, took: Duration) {
        self.latencies.push(took);
    }

    fn bad_status(&mut self, status: u16) {
        if status >= 500 {
            self.server_errors += 1;
        } else {
            self.other_status += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.server_errors += other.server_errors;
        self.other_status += other.other_status;
    }

    fn percentile(&mut self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() - 1) as f64 * p / 100.0).round() as usize;
        Some(self.latencies[i])
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    })
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// One kept-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Sends a request without a body and returns the reply's status.
    async fn send(&mut self, method: &str, target: &str) -> std::io::Result<u16> {
        let head = format!("{method} {target} HTTP/1.1\r\nHost: load\r\nContent-Length: 0\r\n\r\n");
        tokio::time::timeout(REPLY_TIMEOUT, async {
            self.stream.write_all(head.as_bytes()).await?;
            self.read_reply().await
        })
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    async fn read_reply(&mut self) -> std::io::Result<u16> {
        let broken =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buf[..end]).map_err(|_| broken("head"))?;
                let status: u16 = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| broken("status line"))?;
                let length: usize = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse().ok())
                    .unwrap_or(0);
                let total = end + 4 + length;
                while self.buf.len() < total {
                    self.fill().await?;
                }
                self.buf.drain(..total);
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A `foolock serve` on a free loopback port with a state directory of its own; stopped and
/// removed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Server {
    fn start(bin: &Path) -> Server {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "foolock-load-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
            .arg(dir.join("state"))
            .env("FOOLOCK_CONFIG", dir.join("none.toml"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start foolock serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the listening line");
        let addr = line
            .strip_prefix("foolock listening on ")
            .and_then(|rest| rest.split(';').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Server { child, addr, dir }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The resident set size of process `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        return status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
    }
    let out = Command::new("ps")
        .args(["-o", "rss=", "-p", &pid.to_string()])
        .output()
        .expect("ps");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A thousand client connections need more than macOS's default 256 open files: raise the
/// soft limit to the hard one.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
