//! Helpers for `bench/run` that wrk cannot do: fill the table with many held jobs and time
//! long-poll hand-overs. Built as a Cargo example (std only, a minimal blocking HTTP/1.1
//! client), so it never ships in the package.
//!
//! - `driver fill ADDR COUNT PREFIX`: acquires jobs PREFIX0…PREFIX{COUNT-1} for one client,
//!   over 32 connections so the server's group commit shares the writes.
//! - `driver handover ADDR ROUNDS ours|ceiling`: a holder releases while another client waits
//!   (`wait=`); prints percentiles of the time from sending the release to the waiter's reply.
//! - `driver repeat ADDR COUNT METHOD PATH`: the same request COUNT times on one connection,
//!   one at a time (for profiling: a known number of requests, no load generator in the way).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn send(&mut self, method: &str, path: &str) -> io::Result<()> {
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: 0\r\n\r\n"
        )
    }

    /// Reads one reply: its status and body.
    fn recv(&mut self) -> io::Result<(u16, String)> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(io::Error::other)?;
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    fn call(&mut self, method: &str, path: &str) -> io::Result<(u16, String)> {
        self.send(method, path)?;
        self.recv()
    }

    /// Like `call`, failing unless the reply is 200.
    fn ok(&mut self, method: &str, path: &str) -> io::Result<String> {
        match self.call(method, path)? {
            (200, body) => Ok(body),
            (status, body) => Err(io::Error::other(format!(
                "{method} {path}: {status} {body}"
            ))),
        }
    }
}

fn fill(addr: SocketAddr, count: usize, prefix: &str) -> io::Result<()> {
    const CONNS: usize = 32;
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..CONNS)
            .map(|w| {
                s.spawn(move || -> io::Result<()> {
                    let mut conn = Conn::connect(addr)?;
                    for i in (w..count).step_by(CONNS) {
                        conn.ok(
                            "POST",
                            &format!("/lock?job={prefix}{i}&client=filler&ttl=1h"),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("fill worker panicked"))
    })?;
    eprintln!(
        "filled {count} jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn handover(addr: SocketAddr, rounds: usize, ceiling: bool) -> io::Result<()> {
    const WARMUP: usize = 20;
    let (mut holder, mut waiter, mut probe) = (
        Conn::connect(addr)?,
        Conn::connect(addr)?,
        Conn::connect(addr)?,
    );
    let mut times = Vec::with_capacity(rounds);
    let deadline = Instant::now() + Duration::from_secs(120);
    for round in 0..WARMUP + rounds {
        holder.ok("POST", "/lock?job=handover&client=a&ttl=1m")?;
        waiter.send("POST", "/lock?job=handover&client=b&ttl=1m&wait=30s")?;
        // Release only once the waiter is queued, or we would time its arrival instead.
        loop {
            let parked = if ceiling {
                probe.ok("GET", "/ceiling/waiting")? == "1"
            } else {
                probe
                    .ok("GET", "/lock?job=handover")?
                    .contains("\"waiting\":1")
            };
            if parked {
                break;
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("the waiter never queued"));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let sent = Instant::now();
        holder.send("DELETE", "/lock?job=handover&client=a")?;
        let (status, body) = waiter.recv()?;
        let took = sent.elapsed();
        if status != 200 {
            return Err(io::Error::other(format!("waiter got {status} {body}")));
        }
        let (status, body) = holder.recv()?;
        if status != 200 {
            return Err(io::Error::other(format!("release got {status} {body}")));
        }
        waiter.ok("DELETE", "/lock?job=handover&client=b")?;
        if round >= WARMUP {
            times.push(took);
        }
    }
    times.sort();
    let pct = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)].as_micros();
    println!(
        "RESULT rounds={rounds} p50_us={} p99_us={} max_us={}",
        pct(50),
        pct(99),
        times.last().unwrap().as_micros()
    );
    Ok(())
}

fn repeat(addr: SocketAddr, count: usize, method: &str, path: &str) -> io::Result<()> {
    let mut conn = Conn::connect(addr)?;
    let started = Instant::now();
    for _ in 0..count {
        conn.ok(method, path)?;
    }
    let took = started.elapsed();
    println!(
        "RESULT requests={count} mean_us={}",
        took.as_micros() / count.max(1) as u128
    );
    Ok(())
}

fn run(args: &[String]) -> io::Result<()> {
    let addr = |s: &String| -> io::Result<SocketAddr> { s.parse().map_err(io::Error::other) };
    let number = |s: &String| -> io::Result<usize> { s.parse().map_err(io::Error::other) };
    match args {
        [cmd, a, n, prefix] if cmd == "fill" => fill(addr(a)?, number(n)?, prefix),
        [cmd, a, n, method, path] if cmd == "repeat" => repeat(addr(a)?, number(n)?, method, path),
        [cmd, a, n, kind] if cmd == "handover" && (kind == "ours" || kind == "ceiling") => {
            handover(addr(a)?, number(n)?, kind == "ceiling")
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: driver fill ADDR COUNT PREFIX | handover ADDR ROUNDS ours|ceiling | repeat ADDR COUNT METHOD PATH",
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("driver: {e}");
            ExitCode::FAILURE
        }
    }
}
