//! A TCP proxy that can cut a connection on demand: the coordinator's link
//! to the broker (or anything else) goes through it, so a test can take the
//! broker away from one client for as long as it likes while every other
//! client of the shared server keeps working.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use std::sync::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Debug, Default)]
struct State {
    cut: AtomicBool,
    links: Mutex<Vec<AbortHandle>>,
}

/// See the module docs. Dropping it stops the proxy and its links.
#[derive(Debug)]
pub struct CutProxy {
    addr: SocketAddr,
    state: Arc<State>,
    acceptor: JoinHandle<()>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let shared = state.clone();
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        let mut client = client;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                shared
                    .links
                    .lock()
                    .expect("links lock")
                    .push(link.abort_handle());
            }
        });
        Ok(Self {
            addr,
            state,
            acceptor,
        })
    }

    /// The proxy's own address (give it to the client instead of the target).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every open link and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for link in self.state.links.lock().expect("links lock").drain(..) {
            link.abort();
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

/// The address of `url`'s host and port (`amqp://user:pw@host:port/vhost`).
pub fn url_addr(url: &str) -> Result<SocketAddr> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    use std::net::ToSocketAddrs;
    host_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {host_port}"))?
        .next()
        .with_context(|| format!("{host_port} has no address"))
}

/// `url` with its host and port replaced by `addr`.
pub fn url_via(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let credentials = authority
        .rsplit_once('@')
        .map(|(c, _)| format!("{c}@"))
        .unwrap_or_default();
    format!("{scheme}://{credentials}{addr}/{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_to_the_proxy() {
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            url_via("amqp://guest:guest@127.0.0.1:5672/%2f", addr),
            "amqp://guest:guest@127.0.0.1:4000/%2f"
        );
        assert_eq!(
            url_via("redis://localhost:6379/", addr),
            "redis://127.0.0.1:4000/"
        );
        assert_eq!(
            url_addr("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap(),
            "127.0.0.1:5672".parse().unwrap()
        );
    }
}
