//! What "ready" means for a broker in a container: its server on 127.0.0.1 answers its own
//! protocol as a server that accepts work does. An open port is not enough: PostgreSQL accepts
//! connections while it starts up and refuses the login, and Redis answers `-LOADING` while it
//! reads its data.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

use super::Container;

/// How long one probe may wait to connect, and then for each reply.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `Ok` when the `kind` server at 127.0.0.1:`port` answers as a ready server; otherwise what it
/// did instead.
pub(super) fn answers(kind: Container, port: u16) -> Result<(), String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)
        .map_err(|err| format!("cannot connect: {err}"))?;
    stream
        .set_read_timeout(Some(PROBE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PROBE_TIMEOUT)))
        .map_err(|err| format!("cannot set timeouts: {err}"))?;
    match kind {
        Container::Redis => redis(&mut stream),
        Container::Postgres => postgres(&mut stream),
        Container::RabbitMq => amqp(&mut stream),
    }
}

fn send(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .map_err(|err| format!("cannot send: {err}"))
}

fn receive<const N: usize>(stream: &mut TcpStream) -> Result<[u8; N], String> {
    let mut bytes = [0; N];
    stream
        .read_exact(&mut bytes)
        .map_err(|err| format!("no reply: {err}"))?;
    Ok(bytes)
}

/// `PING` gets `+PONG`.
fn redis(stream: &mut TcpStream) -> Result<(), String> {
    send(stream, b"PING\r\n")?;
    let mut reply = Vec::new();
    let mut byte = [0; 1];
    while reply.len() < 256 && !reply.ends_with(b"\r\n") {
        stream
            .read_exact(&mut byte)
            .map_err(|err| format!("no reply to PING: {err}"))?;
        reply.push(byte[0]);
    }
    if reply.starts_with(b"+PONG") {
        Ok(())
    } else {
        Err(format!(
            "PING got {}",
            String::from_utf8_lossy(&reply).trim_end()
        ))
    }
}

/// A protocol 3.0 login as `postgres` to database `postgres` gets AuthenticationOk: the server
/// accepts logins and trusts this one.
fn postgres(stream: &mut TcpStream) -> Result<(), String> {
    const PROTOCOL_3_0: u32 = 196_608;
    const PARAMETERS: &[u8] = b"user\0postgres\0database\0postgres\0\0";
    let length = u32::try_from(8 + PARAMETERS.len()).expect("a startup message of a few bytes");
    let mut startup = Vec::new();
    startup.extend(length.to_be_bytes());
    startup.extend(PROTOCOL_3_0.to_be_bytes());
    startup.extend(PARAMETERS);
    send(stream, &startup)?;

    let [tag, length @ ..] = receive::<5>(stream)?;
    let length = u32::from_be_bytes(length);
    match tag {
        b'R' => {
            let method = u32::from_be_bytes(receive::<4>(stream)?);
            if method == 0 {
                // Terminate, so that the server logs no broken connection.
                let _ = send(stream, b"X\0\0\0\x04");
                Ok(())
            } else {
                Err(format!(
                    "the login asks for authentication (method {method}); the fixture needs \
                     trust authentication"
                ))
            }
        }
        b'E' => {
            let mut body =
                vec![0; usize::try_from(length.saturating_sub(4).min(4096)).unwrap_or(0)];
            stream
                .read_exact(&mut body)
                .map_err(|err| format!("an error reply broke off: {err}"))?;
            Err(format!("the login was refused: {}", error_message(&body)))
        }
        other => Err(format!(
            "the reply starts with {:?}, not a PostgreSQL message",
            char::from(other)
        )),
    }
}

/// The `M` (message) field of an ErrorResponse body: (field type, text NUL) pairs.
fn error_message(body: &[u8]) -> String {
    body.split(|&byte| byte == 0)
        .find_map(|field| field.strip_prefix(b"M"))
        .map_or_else(
            || "no message".to_owned(),
            |text| String::from_utf8_lossy(text).into_owned(),
        )
}

/// The AMQP 0-9-1 protocol header gets a method frame (Connection.Start).
fn amqp(stream: &mut TcpStream) -> Result<(), String> {
    send(stream, b"AMQP\0\0\x09\x01")?;
    let [frame_type] = receive::<1>(stream)?;
    if frame_type == 1 {
        Ok(())
    } else {
        Err(format!(
            "the protocol header got frame type {frame_type}, not a method frame"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, thread};

    use super::*;

    /// A server on 127.0.0.1 that reads what the probe sends, then answers `reply` and closes.
    fn server_answering(reply: &'static [u8]) -> u16 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind on loopback");
        let port = listener.local_addr().expect("bound").port();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("the probe connects");
            let mut request = [0; 64];
            let _ = stream.read(&mut request);
            stream.write_all(reply).expect("answer");
        });
        port
    }

    #[test]
    fn redis_answering_pong_is_ready() {
        let port = server_answering(b"+PONG\r\n");
        assert_eq!(answers(Container::Redis, port), Ok(()));
    }

    #[test]
    fn redis_still_loading_is_not_ready_and_says_so() {
        let port = server_answering(b"-LOADING Redis is loading the dataset in memory\r\n");
        let err = answers(Container::Redis, port).expect_err("loading is not ready");
        assert!(err.contains("-LOADING"), "{err}");
    }

    #[test]
    fn postgres_trusting_the_login_is_ready() {
        let port = server_answering(b"R\0\0\0\x08\0\0\0\0");
        assert_eq!(answers(Container::Postgres, port), Ok(()));
    }

    #[test]
    fn postgres_starting_up_is_not_ready_and_gives_its_message() {
        let port =
            server_answering(b"E\0\0\0\x37SFATAL\0C57P03\0Mthe database system is starting up\0\0");
        let err = answers(Container::Postgres, port).expect_err("starting up is not ready");
        assert!(err.ends_with("the database system is starting up"), "{err}");
    }

    #[test]
    fn postgres_asking_for_a_password_is_not_ready() {
        let port = server_answering(b"R\0\0\0\x0c\0\0\0\x0a");
        let err = answers(Container::Postgres, port).expect_err("a password is not trust");
        assert!(err.contains("method 10"), "{err}");
    }

    #[test]
    fn amqp_method_frame_is_ready() {
        let port = server_answering(b"\x01\0\0");
        assert_eq!(answers(Container::RabbitMq, port), Ok(()));
    }

    #[test]
    fn nothing_listening_is_not_ready() {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let err = answers(Container::Redis, port).expect_err("nobody answers");
        assert!(err.starts_with("cannot connect"), "{err}");
    }
}
