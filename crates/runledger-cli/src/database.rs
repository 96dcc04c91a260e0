//! Which database the binary uses: `DATABASE_URL` when set, else a private embedded PostgreSQL
//! in `--data-dir` (default `./.runledger/`), started on demand and stopped on exit, or, while a
//! `serve` runs on that directory, the one it started (over its socket).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use runledger_pg::{EmbeddedConfig, EmbeddedPostgres};
use runledger_store::MIGRATOR;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::local_server::LocalServer;

mod hosts;
mod primary;

pub use hosts::{ServerList, TargetSession};

/// The connections a process opens at most unless `--max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 32;

/// Where the ledger lives.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL; without it, an embedded server is run in --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Directory of the embedded PostgreSQL (used when no DATABASE_URL is given).
    #[arg(
        long,
        env = "RUNLEDGER_DATA_DIR",
        default_value = ".runledger",
        global = true
    )]
    data_dir: PathBuf,
    /// Most connections the process opens.
    #[arg(
        long,
        env = "RUNLEDGER_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        global = true
    )]
    max_connections: u32,
    /// Seconds a request waits for a database connection before it answers 503 (the database
    /// is down, unreachable, or every connection is busy).
    #[arg(
        long,
        env = "RUNLEDGER_ACQUIRE_TIMEOUT_SECONDS",
        default_value_t = 2.0,
        global = true
    )]
    acquire_timeout_seconds: f64,
}

impl DatabaseArgs {
    /// The embedded server's data directory, unless `DATABASE_URL` names another server.
    pub fn embedded_dir(&self) -> Option<&Path> {
        self.database_url
            .is_none()
            .then_some(self.data_dir.as_path())
    }
}

/// The ledger's database on the embedded server.
const EMBEDDED_DATABASE: &str = "runledger";

/// The database server, and the embedded one to stop on exit when we started it.
pub struct Database {
    /// The first server of `servers`: what every pool's options are made from.
    options: PgConnectOptions,
    /// The servers of `DATABASE_URL` (one, unless it lists several: docs/adr/0028).
    servers: ServerList,
    max_connections: u32,
    acquire_timeout: Duration,
    embedded: Option<EmbeddedPostgres>,
    /// The data directory of the embedded server, whether we started it or a `serve` did.
    data_dir: Option<PathBuf>,
    /// Whether we use the embedded server a running `serve` started.
    beside_serve: bool,
}

impl Database {
    /// Parses `DATABASE_URL`, or starts the embedded server (blocking, before any runtime work).
    /// `serve` opens the database this way: it owns the embedded server it runs on.
    pub fn open(args: &DatabaseArgs) -> anyhow::Result<Self> {
        Self::open_with(args, false)
    }

    /// Like [`Database::open`], but while a `serve` runs on the embedded data directory, uses
    /// the server it started (over its unix socket) instead of failing because the cluster is
    /// in use: the subcommands that need the database itself (`migrate`, `verify`, `export`,
    /// `anchors`, `projections`…) work beside a running `serve`.
    pub fn open_beside_serve(args: &DatabaseArgs) -> anyhow::Result<Self> {
        Self::open_with(args, true)
    }

    fn open_with(args: &DatabaseArgs, attach: bool) -> anyhow::Result<Self> {
        let running = match &args.database_url {
            None if attach => LocalServer::running(&args.data_dir),
            _ => None,
        };
        let (url, embedded) = match (&args.database_url, running) {
            (Some(url), _) => (url.clone(), None),
            (None, Some((server, _))) => (server.database_url, None),
            (None, None) => {
                if let Some((server, _)) = LocalServer::running(&args.data_dir) {
                    anyhow::bail!(
                        "a runledger serve (pid {}) already runs on {}, at {}: use it, or stop it first",
                        server.pid,
                        args.data_dir.display(),
                        server.url
                    );
                }
                let embedded = EmbeddedPostgres::start(EmbeddedConfig::durable(&args.data_dir))
                    .with_context(|| {
                        format!(
                            "starting the embedded PostgreSQL in {}",
                            args.data_dir.display()
                        )
                    })?;
                let url = embedded.database_url(EMBEDDED_DATABASE);
                // The server's own line names its `postgres` database; this is the ledger's.
                tracing::info!(%url, "the ledger's database (psql takes this URL)");
                (url, Some(embedded))
            }
        };
        let beside_serve = args.database_url.is_none() && embedded.is_none();
        // The URL may hold a password: never put it in an error message.
        let servers = ServerList::parse(&url)?;
        Ok(Self {
            options: servers.servers[0].clone(),
            servers,
            max_connections: args.max_connections,
            acquire_timeout: Duration::try_from_secs_f64(args.acquire_timeout_seconds)
                .ok()
                .filter(|timeout| !timeout.is_zero())
                .context("--acquire-timeout-seconds must be a positive number of seconds")?,
            embedded,
            data_dir: args.database_url.is_none().then(|| args.data_dir.clone()),
            beside_serve,
        })
    }

    /// The data directory of the embedded server, when the ledger is on it.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// The URL and the socket file of the embedded server we started, for the record `serve`
    /// keeps (the URL holds no password: the socket's server trusts its local users).
    pub fn embedded_socket(&self) -> Option<(String, PathBuf)> {
        self.embedded.as_ref().map(|embedded| {
            (
                embedded.database_url(EMBEDDED_DATABASE),
                embedded
                    .socket_dir()
                    .join(format!(".s.PGSQL.{}", embedded.port())),
            )
        })
    }

    /// Where the data is, for people (never the URL, which may hold a password).
    pub fn describe(&self) -> String {
        match (&self.embedded, &self.data_dir) {
            (Some(embedded), _) => {
                format!("embedded PostgreSQL in {}", embedded.data_dir().display())
            }
            (None, Some(dir)) if self.beside_serve => format!(
                "the embedded PostgreSQL of the serve running on {}",
                dir.display()
            ),
            _ if self.servers.is_multi_host() => format!(
                "PostgreSQL at {}",
                self.servers
                    .servers
                    .iter()
                    .map(primary::address)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => format!("PostgreSQL at {}", self.options.get_host()),
        }
    }

    /// Whether this process runs the (embedded) database itself.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Connect options of the server's database, for callers that open their own databases (of
    /// the first server, when `DATABASE_URL` lists several: [`Database::pool`] finds the one
    /// that fits).
    pub fn options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// A pool on the ledger database, migrated (and, on the embedded server, created first).
    ///
    /// On the embedded server and as the schema's owner, the migrations are applied. As an
    /// application role (a member of `runledger_app` that does not own `events`) nothing is
    /// migrated: the schema's version is checked, and missing migrations are an error that
    /// names `runledger migrate` (docs/adr/0023).
    pub async fn migrated_pool(&self) -> anyhow::Result<PgPool> {
        if self.embedded.is_some() {
            self.create_embedded_database().await?;
        }
        let pool = self
            .pool(self.options.clone(), self.max_connections)
            .await?;
        match schema_role(&pool).await? {
            SchemaRole::Owner => MIGRATOR
                .run(&pool)
                .await
                .context("applying the event store migrations")?,
            SchemaRole::Application => check_migrated(&pool).await?,
        }
        Ok(pool)
    }

    /// `runledger migrate`: applies the migrations as the role given, whatever it is (the
    /// schema's owner, in a deployment of least privilege).
    pub async fn migrate(&self) -> anyhow::Result<PgPool> {
        if self.embedded.is_some() {
            self.create_embedded_database().await?;
        }
        let pool = self
            .pool(self.options.clone(), self.max_connections)
            .await?;
        MIGRATOR.run(&pool).await.context(
            "applying the event store migrations (run `runledger migrate` as the owner of the database's schema)",
        )?;
        Ok(pool)
    }

    /// The pool `serve`, `project` and `rebuild` work on: as the application role, which can
    /// append and build the read models but never change or drop an event.
    ///
    /// On `DATABASE_URL` that is the role the URL logs in as (an operator sets it up:
    /// docs/deployment.md). On the embedded server the owner migrates, makes sure the login
    /// role [`EMBEDDED_APP_ROLE`] exists, and the pool logs in as it.
    pub async fn application_pool(&self) -> anyhow::Result<PgPool> {
        let pool = self.migrated_pool().await?;
        if self.data_dir.is_none() {
            return Ok(pool);
        }
        sqlx::raw_sql(EMBEDDED_APP_ROLE_SQL)
            .execute(&pool)
            .await
            .context("setting up the embedded database's application role")?;
        pool.close().await;
        self.pool(
            self.options.clone().username(EMBEDDED_APP_ROLE),
            self.max_connections,
        )
        .await
    }

    async fn create_embedded_database(&self) -> anyhow::Result<()> {
        let mut admin = self.options.clone().database("postgres").connect().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(EMBEDDED_DATABASE)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            sqlx::raw_sql(&format!("CREATE DATABASE {EMBEDDED_DATABASE}"))
                .execute(&mut admin)
                .await?;
        }
        Ok(())
    }

    /// A pool with the process's connection settings. When `DATABASE_URL` lists several
    /// servers, the pool is on the one that fits its `target_session_attrs` and follows the
    /// primary to another server after a promotion (docs/adr/0028).
    pub async fn pool(
        &self,
        options: PgConnectOptions,
        max_connections: u32,
    ) -> anyhow::Result<PgPool> {
        let pool_options = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(self.acquire_timeout);
        let pool = if self.servers.is_multi_host() {
            primary::following_pool(self.servers.clone(), options, pool_options).await
        } else {
            pool_options.connect_with(options).await.map_err(Into::into)
        };
        pool.with_context(|| format!("connecting to {}", self.describe()))
    }

    /// Opens the database of `args` (the running `serve`'s, if one runs on its data directory:
    /// [`Database::open_beside_serve`]) and [`Database::run_then_close`]s `work` on it.
    ///
    /// # Errors
    /// When the database cannot be opened or stopped, or `work` fails.
    pub fn run<T>(
        args: &DatabaseArgs,
        runtime: tokio::runtime::Runtime,
        work: impl AsyncFnOnce(&Database) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        Database::open_beside_serve(args)?.run_then_close(runtime, work)
    }

    /// Runs `work` on this database to completion in `runtime`, then drops the runtime (and with
    /// it every task still using the database) and stops the embedded server, whatever the
    /// outcome, so that it shuts down cleanly.
    ///
    /// # Errors
    /// When the database cannot be stopped, or `work` fails.
    pub fn run_then_close<T>(
        self,
        runtime: tokio::runtime::Runtime,
        work: impl AsyncFnOnce(&Database) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let database = self;
        let result = runtime.block_on(work(&database));
        drop(runtime);
        match (result, database.close()) {
            (result, Ok(())) => result,
            (Ok(_), Err(stop)) => Err(stop),
            // The work's failure is the one to report (a full disk, say, fails the work and
            // then the shutdown's checkpoint): the shutdown's is only logged.
            (Err(error), Err(stop)) => {
                tracing::error!(
                    error = format!("{stop:#}"),
                    "the database did not stop cleanly either"
                );
                Err(error)
            }
        }
    }

    /// Stops the embedded server, if we started one.
    pub fn close(self) -> anyhow::Result<()> {
        if let Some(embedded) = self.embedded {
            embedded
                .stop()
                .context("stopping the embedded PostgreSQL")?;
        }
        Ok(())
    }
}

/// The login role of `serve`, `project` and `rebuild` on the embedded server: a member of
/// `runledger_app`, acting as it (so that what it creates, the read models, is `runledger_app`'s).
pub const EMBEDDED_APP_ROLE: &str = "runledger_server";

/// Creates [`EMBEDDED_APP_ROLE`] once; the embedded server trusts its local users, so it has no
/// password.
const EMBEDDED_APP_ROLE_SQL: &str = "DO $$ BEGIN \
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runledger_server') THEN \
        CREATE ROLE runledger_server LOGIN IN ROLE runledger_app; \
    END IF; END $$; \
    ALTER ROLE runledger_server SET role = 'runledger_app'";

/// What the role a pool logs in as may do with the schema.
enum SchemaRole {
    /// It owns the event store (or it is a superuser, or there is no event store yet and no
    /// application role to tell it from): it migrates.
    Owner,
    /// A member of `runledger_app` that does not own the event store: it never migrates.
    Application,
}

async fn schema_role(pool: &PgPool) -> anyhow::Result<SchemaRole> {
    let (owner, application): (bool, bool) = sqlx::query_as(
        "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
                OR COALESCE((SELECT pg_has_role(current_user, c.relowner, 'USAGE') \
                    FROM pg_class c WHERE c.oid = to_regclass('public.events')), false), \
                EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'runledger_app') \
                    AND pg_has_role(current_user, 'runledger_app', 'MEMBER')",
    )
    .fetch_one(pool)
    .await
    .context("reading the database role's privileges")?;
    Ok(if owner || !application {
        SchemaRole::Owner
    } else {
        SchemaRole::Application
    })
}

/// Checks that every migration this binary knows is applied, as a role that may not apply them.
async fn check_migrated(pool: &PgPool) -> anyhow::Result<()> {
    let applied: Vec<i64> = match sqlx::query_scalar(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(pool)
    .await
    {
        Ok(applied) => applied,
        // No migration table, or one this role may not read (migrated by a release before the
        // application role could): as good as unmigrated.
        Err(sqlx::Error::Database(error))
            if matches!(error.code().as_deref(), Some("42P01" | "42501")) =>
        {
            Vec::new()
        }
        Err(error) => return Err(error).context("reading the applied migrations"),
    };
    let missing: Vec<String> = MIGRATOR
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .map(|migration| format!("{} {}", migration.version, migration.description))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the database is not migrated for this runledger ({} missing: {}); this role is an application role and does not migrate: run `runledger migrate` with a DATABASE_URL of the schema's owner first",
        missing.len(),
        missing.join(", ")
    );
    Ok(())
}
