//! Per-OS socket calls for the server: raising the open-file limit, and noticing that a
//! client hung up while its request is still being served.

use std::time::Duration;

/// The open-file limit after raising the soft limit as far as the hard one allows (macOS gives
/// a launchd agent 256). `None` where there is no such limit to read.
#[cfg(unix)]
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        // macOS refuses more than OPEN_MAX (10240) even when the hard limit says unlimited.
        for want in [limit.rlim_max, limit.rlim_max.min(10_240)] {
            if want <= limit.rlim_cur {
                break;
            }
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = want;
                break;
            }
        }
    }
    // rlim_t is u64 on Linux and macOS, but not on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    None
}

/// The socket of the connection a request came in on, as a request extension: lets a long
/// wait notice that its client is gone even when the HTTP layer is not reading (it stops
/// while it holds a pipelined request in its buffer). Valid while the request is served,
/// since the connection owns the socket for longer than any of its requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerSocket(#[cfg(unix)] pub(crate) std::os::fd::RawFd);

/// How often to look again when the socket is readable but not closed: the client sent
/// more than the HTTP layer has read (more pipelined requests).
const RECHECK: Duration = Duration::from_millis(500);

impl PeerSocket {
    /// Completes once the peer has closed (or reset) the connection; pending forever if it
    /// cannot watch.
    #[cfg(unix)]
    pub(crate) async fn hung_up(self) {
        use std::os::fd::BorrowedFd;
        // A second descriptor for the same socket, registered with the runtime on its own,
        // so that watching it does not disturb the connection's reads.
        // SAFETY: the fd is open for as long as the request is served (see the type's doc).
        let owned = unsafe { BorrowedFd::borrow_raw(self.0) }.try_clone_to_owned();
        let watch = owned
            .ok()
            .map(std::net::TcpStream::from)
            .and_then(|s| tokio::net::TcpStream::from_std(s).ok());
        let Some(watch) = watch else {
            return std::future::pending().await;
        };
        loop {
            match watch.ready(tokio::io::Interest::READABLE).await {
                Ok(ready) if ready.is_read_closed() || ready.is_error() => return,
                Ok(_) => tokio::time::sleep(RECHECK).await,
                Err(_) => return,
            }
        }
    }

    #[cfg(not(unix))]
    pub(crate) async fn hung_up(self) {
        std::future::pending().await
    }
}

/// Writes `bytes` to the socket without waiting (a last word before closing it: a 408);
/// whatever does not fit at once is dropped.
#[cfg(unix)]
pub(crate) fn send_now(socket: PeerSocket, bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::MSG_DONTWAIT;
    // SAFETY: send on an open socket from a valid buffer; the result is ignored on purpose.
    unsafe {
        libc::send(socket.0, bytes.as_ptr().cast(), bytes.len(), flags);
    }
}

#[cfg(not(unix))]
pub(crate) fn send_now(_socket: PeerSocket, _bytes: &[u8]) {}
