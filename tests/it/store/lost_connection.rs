//! The writer's connection lost while a group commits: every caller's answer matches the log.
//!
//! Three ways to lose it: the server process killed mid-statement (`pg_terminate_backend`: the
//! transaction aborts), the answer cut after the commit by a proxy between the writer and the
//! server (committed, but the writer does not know), and the same cut with the database then out
//! of reach (the writer must say it does not know, and a re-send must stay safe).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use runledger_core::{RunId, TenantId};
use runledger_store::chain::verify_chain;
use runledger_store::{AppendOutcome, EventWriter, NewEvent, StoreError, WriterConfig};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::helpers::TestStore;
use crate::helpers::verbs::{new_run_id, queue_events, tenant};

/// A writer that commits once `appends` appends have joined a group.
fn holding_config(appends: usize) -> WriterConfig {
    WriterConfig {
        linger: Duration::from_secs(30),
        max_group_appends: appends,
        connect_timeout: Duration::from_secs(1),
        // One lane: the appends of a test meet in its one group, on its one connection.
        lanes: 1,
        ..WriterConfig::default()
    }
}

/// `count` new runs' queues appended concurrently through `writer`, as one group.
async fn append_new_runs(
    writer: &EventWriter,
    t: TenantId,
    count: usize,
) -> Vec<(RunId, Vec<NewEvent>, Result<AppendOutcome, StoreError>)> {
    let batches: Vec<(RunId, Vec<NewEvent>)> = (0..count)
        .map(|_| {
            let run = new_run_id();
            (run, queue_events(t, run, json!({"run": run.as_uuid()})))
        })
        .collect();
    let outcomes = join_all(
        batches
            .iter()
            .map(|(run, events)| writer.append(t, *run, 0, events)),
    )
    .await;
    batches
        .into_iter()
        .zip(outcomes)
        .map(|((run, events), outcome)| (run, events, outcome))
        .collect()
}

#[track_caller]
fn assert_all_appended(answers: &[(RunId, Vec<NewEvent>, Result<AppendOutcome, StoreError>)]) {
    for (_, _, outcome) in answers {
        assert!(
            matches!(outcome, Ok(AppendOutcome::Appended(_))),
            "{outcome:?}"
        );
    }
}

/// Each answered append is in the log exactly where its answer says, once.
async fn assert_answers_match_the_log(
    store: &TestStore,
    t: TenantId,
    answers: &[(RunId, Vec<NewEvent>, Result<AppendOutcome, StoreError>)],
) {
    for (run, events, outcome) in answers {
        let stream = store.reader.read_stream(t, *run).await.unwrap();
        match outcome {
            Ok(AppendOutcome::Appended(appended)) => {
                assert!(!appended.replayed, "{appended:?}");
                assert_eq!(
                    stream.iter().map(|e| e.position).collect::<Vec<_>>(),
                    appended.positions
                );
                assert_eq!(
                    stream.iter().map(|e| e.event_id).collect::<Vec<_>>(),
                    events.iter().map(|e| e.event_id).collect::<Vec<_>>()
                );
                assert_eq!(verify_chain(&stream), Ok(events.len() as u64));
            }
            Err(StoreError::OutcomeUnknown) => {}
            other => panic!("{run}: {other:?}, the log holds {stream:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_server_process_is_killed_mid_write_is_written_once_on_a_fresh_connection() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let writer = EventWriter::with_config(store.pool.clone(), holding_config(5));
    // Holds the group's write (it inserts into `streams`) while its read goes through.
    let mut blocker = store.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE streams IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let appending = tokio::spawn({
        let writer = writer.clone();
        async move { append_new_runs(&writer, t, 5).await }
    });
    let writing_backend = wait_for_blocked_write(&store).await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(writing_backend)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(killed);
    blocker.rollback().await.unwrap();
    let answers = appending.await.unwrap();

    assert_all_appended(&answers);
    assert_answers_match_the_log(&store, t, &answers).await;
    assert_eq!(store.count("events").await, 5);
    assert_eq!(writer.stats().connections, 2);
}

/// The server process of the writer's group write, once it waits on the test's lock (found by
/// the statement's opening: `pg_stat_activity` keeps only the first 1 kB of its text).
async fn wait_for_blocked_write(store: &TestStore) -> i32 {
    for _ in 0..500 {
        let backend: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE 'WITH runs AS%'",
        )
        .fetch_optional(&store.pool)
        .await
        .unwrap();
        if let Some(backend) = backend {
            return backend;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the group's write never waited on the lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_whose_answer_is_lost_after_its_commit_learns_it_from_the_log() {
    let store = TestStore::new().await;
    let t = tenant(1);
    let proxy = Proxy::start(&store.pool.connect_options()).await;
    let writer = EventWriter::with_config(proxy.pool().await, holding_config(3));
    // Prepares the writer's statements and tells its lane the database clock, so a group of new
    // runs is exactly one request: the write, without a read (docs/adr/0016).
    let warm_up = append_new_runs(&writer, t, 3).await;
    assert_answers_match_the_log(&store, t, &warm_up).await;

    let unread = writer.stats().unread_groups;
    proxy.cut_the_answer_to_the_request(1, false);
    let answers = append_new_runs(&writer, t, 3).await;

    assert!(proxy.has_cut());
    assert_eq!(writer.stats().unread_groups, unread + 1);
    assert_all_appended(&answers);
    assert_answers_match_the_log(&store, t, &answers).await;
    assert_eq!(store.count("events").await, 6);
    assert_eq!(writer.stats().connections, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_with_the_database_out_of_reach_is_an_unknown_outcome_and_a_re_send_is_safe()
{
    let store = TestStore::new().await;
    let t = tenant(1);
    let proxy = Proxy::start(&store.pool.connect_options()).await;
    let writer = EventWriter::with_config(proxy.pool().await, holding_config(3));
    append_new_runs(&writer, t, 3).await;

    // The answer to the write (the group's one request: its lane knows the clock) is cut, and
    // from then on the proxy lets nothing through.
    let unread = writer.stats().unread_groups;
    proxy.cut_the_answer_to_the_request(1, true);
    let answers = append_new_runs(&writer, t, 3).await;

    assert!(proxy.has_cut());
    assert_eq!(writer.stats().unread_groups, unread + 1);
    for (_, _, outcome) in &answers {
        assert!(
            matches!(outcome, Err(StoreError::OutcomeUnknown)),
            "{outcome:?}"
        );
    }
    // The write had committed; re-sending the same event ids returns where they are, once.
    assert_eq!(store.count("events").await, 6);
    for (run, events, _) in &answers {
        let again = store.writer.append(t, *run, 0, events).await;
        let Ok(AppendOutcome::Appended(again)) = again else {
            panic!("{again:?}");
        };
        assert!(again.replayed);
        let stream = store.reader.read_stream(t, *run).await.unwrap();
        assert_eq!(
            again.positions,
            stream.iter().map(|e| e.position).collect::<Vec<_>>()
        );
    }
    assert_eq!(store.count("events").await, 6);
}

/// Where the proxy stands with the sabotage it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Idle,
    /// Counting the writer's requests down to the one whose answer is cut.
    Counting {
        requests: u32,
        sever: bool,
    },
    /// The next answer is dropped and its connection closed.
    Armed {
        sever: bool,
    },
    Done,
}

/// A unix-socket proxy between a pool and the test server that can drop one answer.
struct Proxy {
    options: PgConnectOptions,
    dir: PathBuf,
    cut: Arc<Mutex<Cut>>,
    /// Set once the proxy cuts every connection and refuses new ones.
    severed: watch::Sender<bool>,
}

static NEXT_PROXY: AtomicU32 = AtomicU32::new(0);

impl Proxy {
    async fn start(server: &PgConnectOptions) -> Proxy {
        let upstream = match server.get_socket() {
            Some(dir) => Upstream::Unix(socket_path(dir, server.get_port())),
            None if server.get_host().starts_with('/') => {
                Upstream::Unix(socket_path(Path::new(server.get_host()), server.get_port()))
            }
            None => Upstream::Tcp(format!("{}:{}", server.get_host(), server.get_port())),
        };
        let dir = std::env::temp_dir().join(format!(
            "rl-proxy-{}-{}",
            std::process::id(),
            NEXT_PROXY.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let listener = UnixListener::bind(socket_path(&dir, server.get_port())).unwrap();
        let cut = Arc::new(Mutex::new(Cut::Idle));
        let (severed, _) = watch::channel(false);
        tokio::spawn({
            let (cut, severed) = (cut.clone(), severed.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    if *severed.borrow() {
                        continue;
                    }
                    let upstream = upstream.clone();
                    tokio::spawn(relay(client, upstream, cut.clone(), severed.clone()));
                }
            }
        });
        Proxy {
            options: server.clone().socket(&dir),
            dir,
            cut,
            severed,
        }
    }

    async fn pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(1))
            .connect_with(self.options.clone())
            .await
            .unwrap()
    }

    /// Drops the answer to the `requests`th request sent from now on, and closes its connection;
    /// with `sever`, closes every connection then and refuses new ones.
    fn cut_the_answer_to_the_request(&self, requests: u32, sever: bool) {
        *self.cut.lock().unwrap() = Cut::Counting { requests, sever };
    }

    fn has_cut(&self) -> bool {
        *self.cut.lock().unwrap() == Cut::Done
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.severed.send_replace(true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

#[derive(Debug, Clone)]
enum Upstream {
    Unix(PathBuf),
    Tcp(String),
}

trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

async fn relay(
    client: UnixStream,
    upstream: Upstream,
    cut: Arc<Mutex<Cut>>,
    severed: watch::Sender<bool>,
) {
    let server: Box<dyn Duplex> = match upstream {
        Upstream::Unix(path) => Box::new(UnixStream::connect(path).await.unwrap()),
        Upstream::Tcp(address) => Box::new(tokio::net::TcpStream::connect(address).await.unwrap()),
    };
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut server_read, mut server_write) = tokio::io::split(server);
    // A request counts the sabotage down; the answer it arms is dropped, closing the relay.
    let requests = pump(&mut client_read, &mut server_write, || {
        let mut cut = cut.lock().unwrap();
        if let Cut::Counting { requests, sever } = *cut {
            *cut = if requests <= 1 {
                Cut::Armed { sever }
            } else {
                Cut::Counting {
                    requests: requests - 1,
                    sever,
                }
            };
        }
        true
    });
    let answers = pump(&mut server_read, &mut client_write, || {
        let mut cut = cut.lock().unwrap();
        let Cut::Armed { sever } = *cut else {
            return true;
        };
        *cut = Cut::Done;
        if sever {
            severed.send_replace(true);
        }
        false
    });
    let mut severed = severed.subscribe();
    tokio::select! {
        () = requests => {}
        () = answers => {}
        _ = severed.wait_for(|severed| *severed) => {}
    }
}

/// Copies `from` to `to` chunk by chunk while `forward` says so; returns when either side closes
/// or `forward` refuses a chunk (which is then dropped).
async fn pump(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut forward: impl FnMut() -> bool,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buffer).await.unwrap_or(0);
        if read == 0 || !forward() || to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
