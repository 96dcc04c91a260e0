//! Test support: one PostgreSQL per test run, a fresh migrated database per test, and verbs
//! that read like the domain.
//!
//! Without `DATABASE_URL` the first test starts a throwaway embedded cluster (fsync off), kept
//! in a `static`; it stops when the test process exits. With `DATABASE_URL`, that server is
//! used; it needs a role that may `CREATE DATABASE`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use runledger_core::{EventId, RunEvent, RunId, TenantId};
use runledger_pg::{EmbeddedConfig, EmbeddedPostgres};
use runledger_store::chain::{HashedFields, event_hash};
use runledger_store::{
    CommandHandler, CommandOutcome, EventMetadata, EventReader, EventWriter, LogCursor, MIGRATOR,
    RecordedEvent,
};
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
            // After the migrations, which create runledger_app (roles are the cluster's).
            sqlx::raw_sql(APP_LOGIN_ROLE_SQL)
                .execute(&mut template)
                .await
                .expect("create the tests' application login role");
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
    // A database's own grants are not copied from its template: the migration's is repeated.
    sqlx::raw_sql(&format!("GRANT CREATE ON DATABASE {name} TO runledger_app"))
        .execute(&mut admin)
        .await
        .expect("let the application role create the read models' schemas");
    admin.close().await.expect("close the admin connection");
    server()
        .admin
        .clone()
        .database(&name)
        .disable_statement_logging()
}

/// A fresh, empty database of this test's own (no migration applied), for tests of migrating.
pub(crate) async fn empty_database() -> PgConnectOptions {
    // The template makes the cluster's roles (runledger_app, the application login role).
    template().await;
    let name = format!(
        "{}_{}",
        server().prefix,
        NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = admin_connection().await;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create an empty test database");
    admin.close().await.expect("close the admin connection");
    server()
        .admin
        .clone()
        .database(&name)
        .disable_statement_logging()
}

/// A pool on a fresh database, sized for tests that open many concurrent connections.
pub(crate) async fn fresh_pool() -> PgPool {
    test_pool(fresh_database().await).await
}

/// A pool on the database of `options`, sized for tests that open many concurrent connections.
pub(crate) async fn test_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(64)
        .connect_with(options)
        .await
        .expect("connect to the test database")
}

/// The login role the tests' servers and projectors connect as: a member of runledger_app that
/// owns nothing of the event store (docs/adr/0023), set up as docs/deployment.md tells an
/// operator to. The password serves a `DATABASE_URL` server; the embedded one trusts locals.
pub(crate) const APP_LOGIN_ROLE: &str = "runledger_it_app";
const APP_LOGIN_PASSWORD: &str = "runledger_it_app";
const APP_LOGIN_ROLE_SQL: &str = "DO $$ BEGIN \
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runledger_it_app') THEN \
        CREATE ROLE runledger_it_app LOGIN PASSWORD 'runledger_it_app' IN ROLE runledger_app; \
    END IF; END $$; \
    ALTER ROLE runledger_it_app SET role = 'runledger_app'";

/// The connect options of the database of `options` as the application login role.
pub(crate) fn as_application_role(options: &PgConnectOptions) -> PgConnectOptions {
    options
        .clone()
        .username(APP_LOGIN_ROLE)
        .password(APP_LOGIN_PASSWORD)
}

/// The machine's clock, for the tests' apps (the binary has its own; a test that steers time
/// uses a `runledger_core::ManualClock` instead).
#[derive(Debug)]
pub(crate) struct WallClock;

impl runledger_core::Clock for WallClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// The store's handles on one fresh database.
pub(crate) struct TestStore {
    /// As the superuser: set-up, tampering, and the store tests' own handles.
    pub(crate) pool: PgPool,
    /// As the application login role: what the tests' servers, projectors and sweepers use,
    /// as `runledger serve` does.
    pub(crate) app_pool: PgPool,
    pub(crate) reader: EventReader,
    pub(crate) writer: EventWriter,
    pub(crate) commands: CommandHandler,
}

impl TestStore {
    pub(crate) async fn new() -> Self {
        let options = fresh_database().await;
        let pool = test_pool(options.clone()).await;
        let app_pool = test_pool(as_application_role(&options)).await;
        let reader = EventReader::new(pool.clone());
        let writer = EventWriter::new(pool.clone());
        let commands = CommandHandler::new(reader.clone(), writer.clone());
        Self {
            pool,
            app_pool,
            reader,
            writer,
            commands,
        }
    }
}

/// How long a test waits for the log to show events that are committed. Readers only read below
/// the oldest running transaction of the whole cluster, so a transaction of a test running in
/// parallel (on another database of the same cluster) may hold them back for a moment.
pub(crate) const LOG_WAIT: Duration = Duration::from_secs(20);

impl TestStore {
    /// The next `count` events of the log after `after`, in safe order, waiting (bounded by
    /// [`LOG_WAIT`]) for readers to be allowed past transactions still running anywhere.
    pub(crate) async fn wait_for_log(&self, after: LogCursor, count: usize) -> Vec<RecordedEvent> {
        let stream = runledger_store::tail::tail(
            self.reader.clone(),
            after,
            None,
            Duration::from_millis(20),
        );
        tokio::time::timeout(LOG_WAIT, stream.take(count).try_collect())
            .await
            .unwrap_or_else(|_| panic!("the log did not show {count} events after {after}"))
            .expect("read the log")
    }

    /// Queues `run` through the command path.
    pub(crate) async fn queue_run(
        &self,
        t: TenantId,
        run: RunId,
        identity: serde_json::Value,
    ) -> CommandOutcome {
        self.commands
            .execute(&verbs::request(t, run, verbs::queue(t, run, identity)))
            .await
            .expect("queue a run")
    }

    /// The dedupe index, as `(tenant, run)` rows.
    pub(crate) async fn active_runs(&self) -> Vec<(i64, uuid::Uuid)> {
        sqlx::query_as("SELECT tenant_id, run_id FROM active_runs ORDER BY tenant_id, run_id")
            .fetch_all(&self.pool)
            .await
            .expect("read active_runs")
    }

    /// Runs `statement` (with `$1` bound to `run`) as the superuser the tests connect as, with
    /// the append-only triggers off (`session_replication_role = replica`): a tamperer's edit.
    pub(crate) async fn tamper(&self, run: RunId, statement: &str) {
        let mut tx = self.pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL session_replication_role = replica")
            .execute(&mut *tx)
            .await
            .expect("turn the triggers off");
        let changed = sqlx::query(statement)
            .bind(run.as_uuid())
            .execute(&mut *tx)
            .await
            .expect("tamper");
        assert!(changed.rows_affected() > 0, "{statement} changed nothing");
        tx.commit().await.expect("commit the tampering");
    }

    /// How many rows `table` has.
    pub(crate) async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count rows")
    }
}

/// An event inserted with plain SQL, bypassing the writer (as a transaction the test holds open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub(crate) position: i64,
    pub(crate) tx_id: u64,
    pub(crate) event_id: EventId,
    pub(crate) hash: [u8; 32],
}

/// Inserts a well-formed event row (correct version and hash chain, database clock) on `conn`,
/// typically inside a transaction the test keeps open or rolls back. The stream head is not
/// moved: use a run the writer never appends to.
pub(crate) async fn insert_raw_event(
    conn: &mut PgConnection,
    tenant: TenantId,
    run: RunId,
    version: u64,
    prev_hash: [u8; 32],
    event: &RunEvent,
) -> RawEvent {
    let stored = StoredPayload {
        event_type: event.event_type(),
        schema_version: event.schema_version(),
        payload: &event.payload(),
    };
    insert_stored_row(conn, tenant, run, version, prev_hash, &stored).await
}

/// A payload as a row stores it: of any schema version, such as one older code wrote.
pub(crate) struct StoredPayload<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) schema_version: i32,
    pub(crate) payload: &'a serde_json::Value,
}

/// [`insert_raw_event`] of a payload as stored, not as today's code writes it.
pub(crate) async fn insert_stored_row(
    conn: &mut PgConnection,
    tenant: TenantId,
    run: RunId,
    version: u64,
    prev_hash: [u8; 32],
    stored: &StoredPayload<'_>,
) -> RawEvent {
    let event_id = verbs::new_event_id();
    let recorded_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *conn)
        .await
        .expect("read the database clock");
    let metadata = EventMetadata::actor("raw-sql").to_json();
    let hash = event_hash(
        &prev_hash,
        &HashedFields {
            event_id: event_id.as_uuid(),
            run_id: run.as_uuid(),
            tenant_id: tenant.get(),
            version,
            event_type: stored.event_type,
            schema_version: stored.schema_version,
            payload: stored.payload,
            metadata: &metadata,
            recorded_at,
        },
    );
    let (position, tx_id): (i64, i64) = sqlx::query_as(
        "INSERT INTO events (event_id, tenant_id, run_id, version, event_type, schema_version,
                             payload, metadata, recorded_at, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING position, tx_id::text::bigint",
    )
    .bind(event_id.as_uuid())
    .bind(tenant.get())
    .bind(run.as_uuid())
    .bind(i64::try_from(version).expect("small version"))
    .bind(stored.event_type)
    .bind(stored.schema_version)
    .bind(stored.payload)
    .bind(&metadata)
    .bind(recorded_at)
    .bind(prev_hash.to_vec())
    .bind(hash.to_vec())
    .fetch_one(&mut *conn)
    .await
    .expect("insert a raw event");
    RawEvent {
        position,
        tx_id: u64::try_from(tx_id).expect("positive xid"),
        event_id,
        hash,
    }
}

/// Domain verbs for tests: commands with fixed, readable defaults.
pub(crate) mod verbs {
    use chrono::{DateTime, TimeZone, Utc};
    use runledger_core::{
        Complete, DispatchFailed, EventId, FailureCode, FailureReport, Initiator, ProgressDelta,
        QueueRun, ReportProgress, RunCommand, RunEvent, RunId, RunIdentity, RunProgressed,
        RunStarted, RunType, Start, TenantId,
    };
    use runledger_store::{CommandRequest, EventMetadata, ExpectedVersion, NewEvent};
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
            limits: runledger_core::RunLimits::default(),
            at: at(0),
        })
    }

    pub(crate) fn start() -> RunCommand {
        RunCommand::Start(Start {
            worker: None,
            at: at(1),
        })
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

    /// Progress with every count given.
    pub(crate) fn progress_delta(success: u64, failed: u64, skipped: u64) -> RunCommand {
        RunCommand::ReportProgress(ReportProgress {
            delta: ProgressDelta {
                success,
                failed,
                skipped,
            },
            total: None,
            failures: Vec::new(),
            at: at(2),
        })
    }

    pub(crate) fn dispatch_failed() -> RunCommand {
        RunCommand::DispatchFailed(DispatchFailed {
            failure: FailureReport {
                code: FailureCode::parse("dispatch_error").expect("valid code"),
                message: "no worker accepted the run".to_owned(),
                count: 1,
            },
            at: at(3),
        })
    }

    pub(crate) fn complete() -> RunCommand {
        RunCommand::Complete(Complete {
            outcome: None,
            final_counts: None,
            failures: Vec::new(),
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

    pub(crate) fn new_event_id() -> EventId {
        EventId::from_uuid(Uuid::new_v4())
    }

    /// A `Started` event, for appends through the writer itself.
    pub(crate) fn started_event(seconds: i64) -> RunEvent {
        RunEvent::Started(RunStarted {
            started_at: at(seconds),
            worker: None,
        })
    }

    /// A `Progressed` event of `success` items, for appends through the writer itself.
    pub(crate) fn progressed_event(success: u64) -> RunEvent {
        RunEvent::Progressed(RunProgressed {
            delta: ProgressDelta {
                success,
                failed: 0,
                skipped: 0,
            },
            total: None,
            failures: Vec::new(),
            reported_at: at(2),
        })
    }

    /// The events (with fresh ids) of a new run's `Queue`, as the writer takes them.
    pub(crate) fn queue_events(
        tenant_id: TenantId,
        run_id: RunId,
        identity: serde_json::Value,
    ) -> Vec<NewEvent> {
        runledger_core::decide(
            &runledger_core::Run::Unqueued,
            queue(tenant_id, run_id, identity),
        )
        .expect("a new run may be queued")
        .into_iter()
        .map(new_event)
        .collect()
    }

    /// `event` with a fresh event id, as the writer takes it.
    pub(crate) fn new_event(event: RunEvent) -> NewEvent {
        NewEvent {
            event_id: new_event_id(),
            event,
            metadata: EventMetadata::actor("test"),
        }
    }
}
