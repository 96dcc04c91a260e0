//! Test support: one PostgreSQL per test run, a fresh migrated database per test, and verbs
//! that read like the domain.
//!
//! Without `DATABASE_URL` the first test starts a throwaway embedded cluster (fsync off), kept
//! in a `static`; it stops when the test process exits. With `DATABASE_URL`, that server is
//! used; it needs a role that may `CREATE DATABASE`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use runledger_pg::{EmbeddedConfig, EmbeddedPostgres};
use runledger_store::{CommandHandler, EventReader, EventWriter, MIGRATOR};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// Where the test databases live.
struct TestServer {
    /// Connect options of the maintenance database, where test databases are created.
    admin: PgConnectOptions,
    /// A prefix unique to this test process, so parallel test runs on one server never collide.
    prefix: String,
    /// Keeps the embedded server alive for the whole run, when there is one.
    _embedded: Option<EmbeddedPostgres>,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        let prefix = format!("rl_{}", std::process::id());
        match std::env::var("DATABASE_URL") {
            Ok(url) => TestServer {
                admin: url.parse().expect("DATABASE_URL is a postgres URL"),
                prefix,
                _embedded: None,
            },
            Err(_) => {
                let embedded = EmbeddedPostgres::start(EmbeddedConfig::ephemeral())
                    .expect("start the embedded test cluster");
                TestServer {
                    admin: embedded
                        .connection_url()
                        .parse()
                        .expect("embedded URL parses"),
                    prefix,
                    _embedded: Some(embedded),
                }
            }
        }
    })
}

async fn admin_connection() -> PgConnection {
    server()
        .admin
        .clone()
        .disable_statement_logging()
        .connect()
        .await
        .expect("connect to the test server")
}

/// The migrated template database, created once per test run.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("{}_template", server().prefix);
            let mut admin = admin_connection().await;
            sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .expect("create the template database");
            let mut template = server()
                .admin
                .clone()
                .database(&name)
                .connect()
                .await
                .expect("connect to template");
            MIGRATOR
                .run(&mut template)
                .await
                .expect("migrate the template database");
            // CREATE DATABASE … TEMPLATE refuses while anyone is connected to the template.
            template
                .close()
                .await
                .expect("close the template connection");
            admin.close().await.expect("close the admin connection");
            name
        })
        .await
}

/// A fresh, migrated database of this test's own.
pub(crate) async fn fresh_database() -> PgConnectOptions {
    let template = template().await;
    let name = format!(
        "{}_{}",
        server().prefix,
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = admin_connection().await;
    sqlx::raw_sql(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.expect("close the admin connection");
    server()
        .admin
        .clone()
        .database(&name)
        .disable_statement_logging()
}

/// A pool on a fresh database, sized for tests that open many concurrent connections.
pub(crate) async fn fresh_pool() -> PgPool {
    let options = fresh_database().await;
    PgPoolOptions::new()
        .max_connections(64)
        .connect_with(options)
        .await
        .expect("connect to the test database")
}

/// The store's handles on one fresh database.
pub(crate) struct TestStore {
    pub(crate) pool: PgPool,
    pub(crate) reader: EventReader,
    pub(crate) writer: EventWriter,
    pub(crate) commands: CommandHandler,
}

impl TestStore {
    pub(crate) async fn new() -> Self {
        let pool = fresh_pool().await;
        let reader = EventReader::new(pool.clone());
        let writer = EventWriter::new(pool.clone());
        let commands = CommandHandler::new(reader.clone(), writer.clone());
        Self {
            pool,
            reader,
            writer,
            commands,
        }
    }
}

/// Domain verbs for tests: commands with fixed, readable defaults.
pub(crate) mod verbs {
    use chrono::{DateTime, TimeZone, Utc};
    use runledger_core::{
        Complete, EventId, Initiator, ProgressDelta, QueueRun, ReportProgress, RunCommand, RunId,
        RunIdentity, RunType, Start, TenantId,
    };
    use runledger_store::{CommandRequest, EventMetadata, ExpectedVersion};
    use uuid::Uuid;

    /// A fixed instant, `seconds` after a fixed epoch: tests never read the clock.
    pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + seconds, 0)
            .single()
            .expect("valid timestamp")
    }

    pub(crate) fn tenant(id: i64) -> TenantId {
        TenantId::new(id).expect("positive tenant id")
    }

    pub(crate) fn queue(
        tenant_id: TenantId,
        run_id: RunId,
        identity: serde_json::Value,
    ) -> RunCommand {
        RunCommand::Queue(QueueRun {
            run_id,
            tenant_id,
            run_type: RunType::parse("inventory.sync").expect("valid type"),
            identity: RunIdentity::new(identity).expect("valid identity"),
            initiator: Initiator::system(),
            context: serde_json::json!({}),
            at: at(0),
        })
    }

    pub(crate) fn start() -> RunCommand {
        RunCommand::Start(Start { at: at(1) })
    }

    pub(crate) fn progress(success: u64, failed: u64) -> RunCommand {
        RunCommand::ReportProgress(ReportProgress {
            delta: ProgressDelta {
                success,
                failed,
                skipped: 0,
            },
            total: None,
            failures: Vec::new(),
            at: at(2),
        })
    }

    pub(crate) fn complete() -> RunCommand {
        RunCommand::Complete(Complete {
            outcome: None,
            at: at(3),
        })
    }

    /// A request with a fresh event id and no pinned version.
    pub(crate) fn request(
        tenant_id: TenantId,
        run_id: RunId,
        command: RunCommand,
    ) -> CommandRequest {
        CommandRequest {
            tenant_id,
            run_id,
            command,
            expected: ExpectedVersion::Any,
            event_id: EventId::from_uuid(Uuid::new_v4()),
            metadata: EventMetadata::actor("test"),
        }
    }

    pub(crate) fn new_run_id() -> RunId {
        RunId::from_uuid(Uuid::new_v4())
    }
}
