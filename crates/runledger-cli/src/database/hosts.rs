//! libpq's multi-host `DATABASE_URL` (`postgres://u:p@h1:5432,h2:5433/db` and
//! `postgres://u@/db?host=/s1,/s2&port=5432,5433`, with `target_session_attrs`), which sqlx does
//! not parse: split into one single-host URL per server, each parsed by sqlx (docs/adr/0028).

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;

/// Which server of the list a connection may use: libpq's `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSession {
    /// The first server that answers (libpq's default).
    Any,
    /// The first server that accepts writes: not in recovery, not read-only by default
    /// (`read-write`, and `primary`, which the ledger treats alike: it always writes).
    ReadWrite,
}

/// The servers of a `DATABASE_URL`, in its order, and which of them to use.
#[derive(Debug, Clone)]
pub struct ServerList {
    /// One connect option per server, all alike but for the server's address.
    pub servers: Vec<PgConnectOptions>,
    pub target: TargetSession,
}

impl ServerList {
    /// Parses `url`. A URL of one server is parsed by sqlx as it is, exactly as before
    /// multi-host URLs were understood.
    ///
    /// # Errors
    /// When the URL is not a PostgreSQL URL, its lists of hosts and ports do not pair up, it
    /// mixes unix sockets and TCP hosts, or its `target_session_attrs` is one the ledger cannot
    /// write through. The error never repeats the URL (it may hold a password).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let parts = UrlParts::split(url)?;
        let mut target = TargetSession::Any;
        let mut query = Vec::new();
        let (mut query_hosts, mut query_ports) = (None, None);
        for pair in parts.query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "target_session_attrs" => target = TargetSession::named(value)?,
                // sqlx (the `url` crate) refuses a user with no host: a lone `host=` is taken
                // as a list of one then.
                "host" if value.contains(',') || parts.hosts.is_empty() => {
                    query_hosts = Some(value);
                }
                "port" if value.contains(',') => query_ports = Some(value),
                _ => query.push(pair),
            }
        }
        let addresses: Vec<Address> = match (parts.hosts.contains(','), query_hosts) {
            (true, Some(_)) => anyhow::bail!(
                "DATABASE_URL lists hosts both before its path and in `host=`: list them in one place"
            ),
            (true, None) => parts
                .hosts
                .split(',')
                .map(Address::in_authority)
                .collect::<anyhow::Result<_>>()?,
            (false, Some(hosts)) => {
                let hosts: Vec<&str> = hosts.split(',').collect();
                let ports = match query_ports {
                    Some(ports) => ports.split(',').collect(),
                    None => vec![""; hosts.len()],
                };
                let ports = match ports.len() {
                    1 => vec![ports[0]; hosts.len()],
                    n if n == hosts.len() => ports,
                    n => anyhow::bail!(
                        "DATABASE_URL lists {} hosts but {n} ports (give one port, or one per host)",
                        hosts.len()
                    ),
                };
                hosts
                    .iter()
                    .zip(ports)
                    .map(|(host, port)| Address::in_query(host, port))
                    .collect()
            }
            (false, None) => {
                anyhow::ensure!(
                    query_ports.is_none(),
                    "DATABASE_URL lists several ports but one host"
                );
                vec![Address::Authority(parts.hosts.to_owned())]
            }
        };
        if addresses.len() > 1 {
            let sockets = addresses.iter().filter(|a| a.is_socket()).count();
            anyhow::ensure!(
                sockets == 0 || sockets == addresses.len(),
                "DATABASE_URL mixes unix sockets and TCP hosts: list one kind"
            );
        }
        let servers = addresses
            .iter()
            .map(|address| {
                let authority = address.authority();
                let single = format!(
                    "{}://{}{authority}{}{}{}",
                    parts.scheme,
                    parts.userinfo,
                    parts.path,
                    if query.is_empty() { "" } else { "?" },
                    query.join("&")
                );
                // sqlx's error may quote the URL: say which part is wrong without it.
                single
                    .parse::<PgConnectOptions>()
                    .map_err(|error| anyhow::anyhow!("{}", redact(&error.to_string(), url)))
                    .context("DATABASE_URL is not a valid PostgreSQL URL")
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { servers, target })
    }

    /// Whether the URL names several servers (and the primary must be looked for among them).
    pub fn is_multi_host(&self) -> bool {
        self.servers.len() > 1
    }
}

impl TargetSession {
    fn named(value: &str) -> anyhow::Result<Self> {
        match value {
            "any" => Ok(Self::Any),
            "read-write" | "primary" => Ok(Self::ReadWrite),
            other => anyhow::bail!(
                "DATABASE_URL's target_session_attrs={other} is not supported: the ledger writes, so use read-write (or primary, or any); read replicas are given with --replica-url"
            ),
        }
    }
}

/// A URL's pieces around its host list, each as written (percent-encoded).
struct UrlParts<'a> {
    scheme: &'a str,
    /// `user:password@`, with its `@`, or empty.
    userinfo: &'a str,
    hosts: &'a str,
    /// From the `/` on, without the query.
    path: &'a str,
    query: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> anyhow::Result<Self> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| matches!(*scheme, "postgres" | "postgresql"))
            .context("DATABASE_URL is not a PostgreSQL URL: it must start with postgres://")?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = match before_query.find('/') {
            Some(slash) => before_query.split_at(slash),
            None => (before_query, ""),
        };
        // The password may hold `@`s only percent-encoded; the last `@` ends the user info.
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => authority.split_at(at + 1),
            None => ("", authority),
        };
        Ok(Self {
            scheme,
            userinfo,
            hosts,
            path,
            query,
        })
    }
}

/// Where one server of the list is.
enum Address {
    /// `host[:port]` in the URL's authority.
    Authority(String),
    /// A `host=` (and `port=`) query pair's values.
    Query { host: String, port: Option<String> },
}

impl Address {
    fn in_authority(host: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !host.is_empty(),
            "DATABASE_URL lists an empty host (two commas in a row?)"
        );
        Ok(Self::Authority(host.to_owned()))
    }

    fn in_query(host: &str, port: &str) -> Self {
        Self::Query {
            host: host.to_owned(),
            port: (!port.is_empty()).then(|| port.to_owned()),
        }
    }

    /// The server as a URL's authority: a URL with a user but no host is no URL (the `url`
    /// crate refuses it), so a socket of `host=` goes there percent-encoded, as sqlx reads it.
    fn authority(&self) -> String {
        match self {
            Self::Authority(host) => host.clone(),
            Self::Query { host, port } => {
                let host = host.replace('/', "%2F");
                match port {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            }
        }
    }

    fn is_socket(&self) -> bool {
        let host = match self {
            Self::Authority(host) | Self::Query { host, .. } => host,
        };
        host.starts_with('/') || host.starts_with("%2F") || host.starts_with("%2f")
    }
}

/// `message` with the URL's password (if any) blanked.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|password| !password.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
