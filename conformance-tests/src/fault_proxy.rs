//! A TCP proxy between clients and their broker that a test makes misbehave: it drops every
//! connection, stalls them all, or cuts one half-way through a reply.
//!
//! Faults act on the bytes, not the protocol, so one proxy serves every backend: Redis's RESP,
//! PostgreSQL's wire protocol, AMQP frames, SQS's HTTP and Kafka's requests alike.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// A proxy listening on a free port of 127.0.0.1. Stops, and closes every connection, on drop.
#[derive(Debug)]
pub struct FaultProxy {
    address: SocketAddr,
    faults: Arc<Faults>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Faults {
    /// Where connections go; `None` until [`FaultProxy::forward_to`]: until then a client's
    /// connection is closed at once.
    target: Mutex<Option<SocketAddr>>,
    /// Cancelled to drop every open connection; replaced by a fresh token each time.
    connections: Mutex<CancellationToken>,
    /// No byte moves, either way, before this instant.
    stalled_until: Mutex<Option<Instant>>,
    /// The next chunk the broker sends is forwarded half, then its connection is closed.
    cut_next_reply: AtomicBool,
    /// Replies cut so far.
    cuts: AtomicU64,
    accepted: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy that forwards nowhere yet (see [`FaultProxy::forward_to`]).
    ///
    /// # Panics
    /// When no port of 127.0.0.1 can be bound.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fault proxy binds a port of 127.0.0.1");
        let address = listener
            .local_addr()
            .expect("a bound listener has an address");
        let faults = Arc::new(Faults::default());
        let accept = tokio::spawn(accept_loop(listener, faults.clone()));
        Self {
            address,
            faults,
            accept,
        }
    }

    /// Where clients connect: the address to put in the broker's URL in place of its own.
    #[must_use]
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Forwards every later connection to `target`, the broker's own address.
    pub fn forward_to(&self, target: SocketAddr) {
        *self.faults.target.lock().expect("target") = Some(target);
    }

    /// Routes `url` through the proxy: forwards to the host and port the URL names, and returns
    /// the URL with the proxy's address in their place (user, path and query kept).
    ///
    /// # Panics
    /// When the URL names no host and port that resolve.
    #[must_use]
    pub fn route(&self, url: &str) -> String {
        let start = url.find("://").map_or(0, |i| i + 3);
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
        let target = url[host_start..end]
            .to_socket_addrs()
            .ok()
            .and_then(|mut addresses| addresses.next())
            .unwrap_or_else(|| {
                panic!(
                    "the broker URL names a host and port: {}",
                    &url[host_start..end]
                )
            });
        self.forward_to(target);
        format!("{}{}{}", &url[..host_start], self.address, &url[end..])
    }

    /// Closes every open connection, both sides, at once. Later connections pass.
    pub fn drop_connections(&self) {
        let mut current = self.faults.connections.lock().expect("connections");
        current.cancel();
        *current = CancellationToken::new();
    }

    /// Holds every byte, in both directions and on every connection, for `duration`; the
    /// connections stay open, and what was held is delivered afterwards.
    pub fn stall(&self, duration: Duration) {
        *self.faults.stalled_until.lock().expect("stall") = Some(Instant::now() + duration);
    }

    /// Forwards only the first half of the next chunk the broker sends, on whichever connection
    /// it comes, then closes that connection: a client sees a reply cut short.
    pub fn cut_next_reply(&self) {
        self.faults.cut_next_reply.store(true, Ordering::SeqCst);
    }

    /// Disarms a cut that has not happened yet and ends a stall: later connections and
    /// replies pass untouched (until the next fault).
    pub fn heal(&self) {
        self.faults.cut_next_reply.store(false, Ordering::SeqCst);
        *self.faults.stalled_until.lock().expect("stall") = None;
    }

    /// Replies cut so far: a cut armed while no reply came does not count.
    #[must_use]
    pub fn replies_cut(&self) -> u64 {
        self.faults.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far: it grows when clients reconnect after a fault.
    #[must_use]
    pub fn connections_accepted(&self) -> u64 {
        self.faults.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.faults
            .connections
            .lock()
            .expect("connections")
            .cancel();
    }
}

async fn accept_loop(listener: TcpListener, faults: Arc<Faults>) {
    while let Ok((client, _)) = listener.accept().await {
        faults.accepted.fetch_add(1, Ordering::SeqCst);
        let target = *faults.target.lock().expect("target");
        let dropped = faults.connections.lock().expect("connections").clone();
        let Some(target) = target else { continue };
        tokio::spawn(forward(client, target, faults.clone(), dropped));
    }
}

/// Copies both ways until either side closes or the proxy drops the connection.
async fn forward(
    client: TcpStream,
    target: SocketAddr,
    faults: Arc<Faults>,
    dropped: CancellationToken,
) {
    let Ok(broker) = TcpStream::connect(target).await else {
        return; // the broker is down: the client sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = broker.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (broker_read, broker_write) = broker.into_split();
    let cut = CancellationToken::new();
    tokio::select! {
        () = copy(client_read, broker_write, &faults, None) => {}
        () = copy(broker_read, client_write, &faults, Some(&cut)) => {}
        () = dropped.cancelled() => {}
        () = cut.cancelled() => {}
    }
}

/// Copies one direction; `reply` is set for broker-to-client, where a cut applies.
async fn copy(
    mut from: tcp::OwnedReadHalf,
    mut to: tcp::OwnedWriteHalf,
    faults: &Faults,
    reply: Option<&CancellationToken>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let stalled_until = *faults.stalled_until.lock().expect("stall");
        if let Some(until) = stalled_until {
            tokio::time::sleep_until(until).await;
        }
        if let Some(cut) = reply
            && faults.cut_next_reply.swap(false, Ordering::SeqCst)
        {
            let _ = to.write_all(&buffer[..read / 2]).await;
            let _ = to.flush().await;
            faults.cuts.fetch_add(1, Ordering::SeqCst);
            cut.cancel();
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_routed_url_keeps_everything_but_the_address() {
        let proxy = FaultProxy::start().await;
        let routed = proxy.route("amqp://guest:p%40ss@localhost:5672/%2f?heartbeat=5");
        assert_eq!(
            routed,
            format!("amqp://guest:p%40ss@{}/%2f?heartbeat=5", proxy.address())
        );
        assert_eq!(
            proxy.route("redis://127.0.0.1:6379"),
            format!("redis://{}", proxy.address())
        );
        assert_eq!(
            *proxy.faults.target.lock().unwrap(),
            Some("127.0.0.1:6379".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_cut_reply_arrives_half_and_then_the_connection_closes() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut request = [0; 4];
                    while socket.read_exact(&mut request).await.is_ok() {
                        let _ = socket.write_all(b"0123456789").await;
                    }
                });
            }
        });
        let proxy = FaultProxy::start().await;
        proxy.forward_to(target);
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut reply = [0; 10];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(
            &reply, b"0123456789",
            "a reply passes whole without a fault"
        );

        proxy.cut_next_reply();
        client.write_all(b"ping").await.unwrap();
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest).await;
        assert_eq!(
            rest, b"01234",
            "half the reply, then the end of the connection"
        );
        assert_eq!(proxy.connections_accepted(), 1);
        assert_eq!(proxy.replies_cut(), 1);
    }

    #[tokio::test]
    async fn a_healed_proxy_cuts_no_later_reply() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let _ = socket.write_all(b"hello").await;
                });
            }
        });
        let proxy = FaultProxy::start().await;
        proxy.forward_to(target);
        proxy.cut_next_reply();
        proxy.heal();
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        let mut greeting = [0; 5];
        client.read_exact(&mut greeting).await.unwrap();
        assert_eq!(&greeting, b"hello", "the armed cut was disarmed");
        assert_eq!(proxy.replies_cut(), 0);
    }

    #[tokio::test]
    async fn a_stall_delays_bytes_and_a_drop_closes_the_connection() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = upstream.accept().await {
                tokio::spawn(async move {
                    let mut byte = [0; 1];
                    while socket.read_exact(&mut byte).await.is_ok() {
                        let _ = socket.write_all(&byte).await;
                    }
                });
            }
        });
        let proxy = FaultProxy::start().await;
        proxy.forward_to(target);
        let mut client = TcpStream::connect(proxy.address()).await.unwrap();
        proxy.stall(Duration::from_millis(300));
        let sent = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut echo = [0; 1];
        client.read_exact(&mut echo).await.unwrap();
        assert!(
            sent.elapsed() >= Duration::from_millis(250),
            "the byte was held"
        );

        proxy.drop_connections();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the connection ends: {read:?}"
        );
    }
}
