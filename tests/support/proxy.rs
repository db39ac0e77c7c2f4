//! An HTTP proxy between a client under test and a real server: it records every request
//! (method, target, headers), can hold requests of one method until the test lets them
//! through, and can drop them unanswered, as a server that went away would. A held request is the observable moment "the client's request is out and
//! unanswered", which a test can act on without guessing at timing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased, values as sent.
    pub headers: Vec<(String, String)>,
    /// When the proxy received it.
    pub at: std::time::Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Requests with this method wait until it is cleared.
    hold: Option<String>,
    /// How many requests are waiting now.
    held: usize,
    /// How many requests are on their way to the server or back.
    forwarding: usize,
    /// Requests with this method are refused (at most this many more) until it is cleared:
    /// closed without a reply, or answered by the proxy with this status.
    refuse: Option<(String, Option<u16>, usize)>,
    /// How many requests were refused, and when each was received.
    refused: Vec<std::time::Instant>,
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// A proxy on a free loopback port that forwards to `upstream`. Its threads end with the test
/// process.
pub struct Proxy {
    pub addr: SocketAddr,
    /// `http://ADDR`
    pub url: String,
    shared: Shared,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared: Shared = Arc::default();
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let shared = Arc::clone(&accepting);
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &shared);
                });
            }
        });
        Proxy {
            addr,
            url: format!("http://{addr}"),
            shared,
        }
    }

    /// From now on, requests with `method` wait at the proxy until [`Proxy::let_through`].
    /// Returns once no request is on its way to the server any more, so nothing sent before
    /// can land after this.
    pub fn hold(&self, method: &str) {
        let (lock, wake) = &*self.shared;
        let mut state = lock.lock().unwrap();
        state.hold = Some(method.to_owned());
        while state.forwarding > 0 {
            state = wake.wait(state).unwrap();
        }
    }

    /// Lets held requests (and later ones) through.
    pub fn let_through(&self) {
        self.shared.0.lock().unwrap().hold = None;
        self.shared.1.notify_all();
    }

    /// From now on, requests with `method` are closed unanswered until [`Proxy::answer`].
    pub fn refuse(&self, method: &str) {
        self.shared.0.lock().unwrap().refuse = Some((method.to_owned(), None, usize::MAX));
    }

    /// The next `times` requests with `method` get `status` (with a JSON error) from the
    /// proxy itself.
    pub fn fail(&self, method: &str, status: u16, times: usize) {
        self.shared.0.lock().unwrap().refuse = Some((method.to_owned(), Some(status), times));
    }

    /// Forwards every request again.
    pub fn answer(&self) {
        self.shared.0.lock().unwrap().refuse = None;
    }

    /// How many requests were refused so far.
    pub fn refused(&self) -> usize {
        self.shared.0.lock().unwrap().refused.len()
    }

    /// When each refused request was received, oldest first.
    pub fn refused_at(&self) -> Vec<std::time::Instant> {
        self.shared.0.lock().unwrap().refused.clone()
    }

    /// How many requests are being held right now.
    pub fn held(&self) -> usize {
        self.shared.0.lock().unwrap().held
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.0.lock().unwrap().seen.clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.let_through();
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, shared: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let (head, body) = read_head(&mut client)?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    {
        let (lock, wake) = &**shared;
        let mut state = lock.lock().unwrap();
        state.seen.push(Seen {
            method: method.clone(),
            target: target.clone(),
            headers: headers.clone(),
            at: std::time::Instant::now(),
        });
        if let Some((refused, status, times)) = &mut state.refuse
            && *refused == method
        {
            let status = *status;
            *times -= 1;
            if *times == 0 {
                state.refuse = None;
            }
            state.refused.push(std::time::Instant::now());
            drop(state);
            if let Some(status) = status {
                let body = r#"{"success":false,"error":"refused by the test's proxy"}"#;
                let reply = format!(
                    "HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                client.write_all(reply.as_bytes())?;
            }
            return Ok(());
        }
        if state.hold.as_deref() == Some(method.as_str()) {
            state.held += 1;
            while state.hold.as_deref() == Some(method.as_str()) {
                state = wake.wait(state).unwrap();
            }
            state.held -= 1;
        }
        state.forwarding += 1;
    }
    let result = forward(&mut client, upstream, &method, &target, &headers, &body);
    let (lock, wake) = &**shared;
    lock.lock().unwrap().forwarding -= 1;
    wake.notify_all();
    result
}

fn forward(
    client: &mut TcpStream,
    upstream: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    // One request per upstream connection, closed after the reply, so the reply ends at EOF.
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        if name != "connection" {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    out.push_str("connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(out.as_bytes())?;
    server.write_all(body)?;
    let mut reply = Vec::new();
    server.read_to_end(&mut reply)?;
    client.write_all(&reply)?;
    client.flush()
}

/// Reads a request's head and its body (by `Content-Length`; our clients send no chunked
/// bodies).
fn read_head(conn: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut body = raw[end + 4..].to_vec();
    let length: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while body.len() < length {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    Ok((head, body))
}
