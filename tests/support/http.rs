//! One HTTP/1.1 request per fresh connection, written by hand to keep test dependencies small
//! and the wire visible. Every foolock reply is JSON, so a body that does not parse is an
//! incomplete reply (the server died while sending it).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A status code, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn token(&self) -> u64 {
        self.body["token"].as_u64().expect("token in reply")
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// `method path_and_query` with no body; `Err` if the server is unreachable or the connection
/// breaks before a whole reply arrives.
pub fn request(addr: SocketAddr, method: &str, path_and_query: &str) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head(addr, method, path_and_query).as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// [`request`] for async tests, which must not block their runtime; panics if the request
/// fails.
pub async fn http(addr: SocketAddr, method: &str, path_and_query: &str) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = head(addr, method, path_and_query);
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    parse(&raw).unwrap_or_else(|e| panic!("{method} {path_and_query}: {e}"))
}

fn head(addr: SocketAddr, method: &str, path_and_query: &str) -> String {
    format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
}

fn parse(raw: &[u8]) -> std::io::Result<Reply> {
    let text = String::from_utf8_lossy(raw);
    let broken = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete reply");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(broken)?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(broken)?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::from_str(body).map_err(|_| broken())?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}
