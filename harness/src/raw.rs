//! Raw connections to one node, with no lock client in between: to read or plant keys, flush
//! scripts or ask `INFO`. Every one has deadlines (connect and each reply), and every one goes
//! to a loopback address: tests never send traffic anywhere else.

use std::net::IpAddr;
use std::time::Duration;

use super::HarnessError;
use super::node::IO_TIMEOUT;

/// A new synchronous connection to the node at `url` (`redis://127.0.0.1:port`), with
/// [`IO_TIMEOUT`] for connect, reads and writes.
///
/// # Errors
/// [`HarnessError::InvalidOptions`] if `url` is not a `redis://` URL of a loopback address,
/// [`HarnessError::Redis`] if the node cannot be reached in time.
pub fn raw_connection(url: &str) -> Result<redis::Connection, HarnessError> {
    connect(url, IO_TIMEOUT)
}

/// A new multiplexed async connection to the node at `url` (`redis://127.0.0.1:port`), with
/// [`IO_TIMEOUT`] to connect and to wait for each reply. Needs a tokio runtime.
///
/// # Errors
/// [`HarnessError::InvalidOptions`] if `url` is not a `redis://` URL of a loopback address,
/// [`HarnessError::Redis`] if the node cannot be reached in time.
pub async fn raw_async(url: &str) -> Result<redis::aio::MultiplexedConnection, HarnessError> {
    let (client, port) = loopback_client(url)?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(IO_TIMEOUT))
        .set_response_timeout(Some(IO_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| HarnessError::redis(port, "connecting", e))
}

/// A new synchronous connection to 127.0.0.1:`port` with `timeout` for connect, reads and
/// writes.
pub(crate) fn connect_port(
    port: u16,
    timeout: Duration,
) -> Result<redis::Connection, HarnessError> {
    connect(&format!("redis://127.0.0.1:{port}"), timeout)
}

/// Runs one command that answers with a (bulk) string on 127.0.0.1:`port`, on a fresh
/// connection.
pub(crate) fn query_port(
    port: u16,
    args: &[&str],
    timeout: Duration,
) -> Result<String, HarnessError> {
    let mut con = connect_port(port, timeout)?;
    let mut cmd = redis::Cmd::new();
    for arg in args {
        cmd.arg(*arg);
    }
    cmd.query(&mut con)
        .map_err(|e| HarnessError::redis(port, args.join(" "), e))
}

fn connect(url: &str, timeout: Duration) -> Result<redis::Connection, HarnessError> {
    let (client, port) = loopback_client(url)?;
    let err = |e| HarnessError::redis(port, "connecting", e);
    let con = client.get_connection_with_timeout(timeout).map_err(err)?;
    con.set_read_timeout(Some(timeout)).map_err(err)?;
    con.set_write_timeout(Some(timeout)).map_err(err)?;
    Ok(con)
}

/// The client for `url` and its port, if `url` names a TCP node on a loopback address.
fn loopback_client(url: &str) -> Result<(redis::Client, u16), HarnessError> {
    let invalid = |why: String| HarnessError::InvalidOptions {
        detail: format!("{url}: {why}; the harness only connects to redis://127.0.0.1:<port>"),
    };
    let client = redis::Client::open(url).map_err(|e| invalid(e.to_string()))?;
    let redis::ConnectionAddr::Tcp(host, port) = client.get_connection_info().addr() else {
        return Err(invalid("not a plain TCP address".to_owned()));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(invalid(format!("{host} is not a loopback address")));
    }
    let port = *port;
    Ok((client, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted() {
        for url in [
            "redis://127.0.0.1:7000",
            "redis://localhost:7000",
            "redis://[::1]:7000",
        ] {
            assert_eq!(loopback_client(url).expect(url).1, 7000);
        }
        for url in ["redis://example.com:7000", "not a url"] {
            assert!(
                matches!(
                    loopback_client(url),
                    Err(HarnessError::InvalidOptions { .. })
                ),
                "{url} was accepted"
            );
        }
    }
}
