//! Tests of reading libpq's multi-host URLs.

use super::*;

fn addresses(list: &ServerList) -> Vec<String> {
    list.servers
        .iter()
        .map(crate::database::primary::address)
        .collect()
}

#[test]
fn a_url_of_one_server_is_parsed_as_sqlx_parses_it() {
    let url = "postgres://u:secret@db.example:6543/ledger?sslmode=disable&application_name=x";
    let list = ServerList::parse(url).unwrap();
    let sqlx_alone: PgConnectOptions = url.parse().unwrap();
    assert!(!list.is_multi_host());
    assert_eq!(list.target, TargetSession::Any);
    assert_eq!(format!("{:?}", list.servers[0]), format!("{sqlx_alone:?}"));
}

#[test]
fn hosts_in_the_authority_are_one_server_each_with_the_rest_of_the_url() {
    let list = ServerList::parse(
        "postgresql://u:p%40ss@h1:5432,h2:5433,h3/db?target_session_attrs=read-write&sslmode=disable",
    )
    .unwrap();
    assert!(list.is_multi_host());
    assert_eq!(list.target, TargetSession::ReadWrite);
    assert_eq!(addresses(&list), ["h1:5432", "h2:5433", "h3:5432"]);
    for server in &list.servers {
        assert_eq!(server.get_username(), "u");
        assert_eq!(server.get_database(), Some("db"));
        assert!(matches!(
            server.get_ssl_mode(),
            sqlx::postgres::PgSslMode::Disable
        ));
    }
}

#[test]
fn sockets_in_the_query_pair_with_their_ports() {
    let list = ServerList::parse(
        "postgres://u@/db?host=/s1,/s2&port=5432,5433&target_session_attrs=primary",
    )
    .unwrap();
    assert_eq!(list.target, TargetSession::ReadWrite);
    assert_eq!(addresses(&list), ["/s1:5432", "/s2:5433"]);
    assert_eq!(list.servers[1].get_database(), Some("db"));

    let one_port = ServerList::parse("postgres://u@/db?host=/s1,/s2&port=6000").unwrap();
    assert_eq!(one_port.target, TargetSession::Any);
    assert_eq!(addresses(&one_port), ["/s1:6000", "/s2:6000"]);
}

#[test]
fn target_session_attrs_on_one_server_is_understood_and_not_passed_on() {
    let list = ServerList::parse("postgres://u@h/db?target_session_attrs=any").unwrap();
    assert!(!list.is_multi_host());
    assert_eq!(addresses(&list), ["h:5432"]);
}

#[test]
fn bad_urls_are_refused_clearly_and_never_with_the_password() {
    for (url, expected) in [
        ("mysql://u:hunter2@h1,h2/db", "must start with postgres://"),
        ("postgres://u:hunter2@h1,,h2/db", "empty host"),
        (
            "postgres://u:hunter2@/db?host=/a,/b,/c&port=1,2",
            "3 hosts but 2 ports",
        ),
        ("postgres://u:hunter2@h1,h2/db?host=/a,/b", "in one place"),
        (
            "postgres://u:hunter2@/db?host=/a,h2",
            "mixes unix sockets and TCP hosts",
        ),
        (
            "postgres://u:hunter2@h1,h2/db?target_session_attrs=standby",
            "target_session_attrs=standby is not supported",
        ),
        (
            "postgres://u:hunter2@h1:notaport,h2/db",
            "not a valid PostgreSQL URL",
        ),
        (
            "postgres://u:hunter2@h1/db?port=1,2",
            "several ports but one host",
        ),
    ] {
        let error = format!("{:#}", ServerList::parse(url).unwrap_err());
        assert!(error.contains(expected), "{url}: {error}");
        assert!(!error.contains("hunter2"), "{url}: {error}");
    }
}
