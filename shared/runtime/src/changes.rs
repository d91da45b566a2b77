//! Telling every replica of a service that rows it keeps copies of have changed.
//!
//! A replica that keeps a copy of stored rows in memory must drop it when another replica
//! writes them. On PostgreSQL a writing transaction [`announce`]s the change on a topic
//! (`NOTIFY`, delivered when it commits and dropped when it rolls back) and every replica
//! [`listen`]s on it over a connection of its own. What a replica hears arrives a moment
//! after the commit, so a copy may be stale for that moment: only copies that can bear it
//! may rely on this. While the listening connection is down nothing is heard, so the
//! listener reports [`Heard::Deaf`] and copies must not be used until [`Heard::Listening`]
//! says announcements are heard again: anything said in between is lost. A connection
//! that stays quiet must answer a statement every few seconds, so one that died silently
//! is noticed too.
//!
//! On SQLite a database belongs to one process, whose own writes are all there is to hear:
//! announcing does nothing and the listener reports listening at once. Two processes
//! writing one SQLite file would not hear each other; that is not a supported setup.

use std::str::FromStr as _;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use sqlx::AnyConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Db;
use crate::db::Backend;

/// The application name of listening connections, to tell them apart on the server.
pub const LISTENER_NAME: &str = "kosha-change-listener";

/// Longest wait between two attempts to listen again after the connection broke.
const MOST_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after the connection broke.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How long the listening connection may stay quiet before it must show it is alive.
pub const QUIET_CHECK: Duration = Duration::from_secs(5);
/// How long it has to answer then.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// What a listener tells its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Announcements are heard from now on; any said before may have been missed.
    Listening,
    /// Announcements are not heard until the next [`Heard::Listening`].
    Deaf,
    /// Rows changed; the payload says which, as the announcing service chose to put it.
    Changed(String),
}

/// Announces, within `conn`'s open transaction, that rows of `topic` changed. Replicas hear
/// it when the transaction commits, and never when it rolls back.
pub async fn announce(conn: &mut AnyConnection, topic: &str, payload: &str) -> sqlx::Result<()> {
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    // `pg_notify` returns `void`, a type the `Any` driver cannot carry: it is counted
    // instead of selected.
    sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS sent")
        .bind(topic)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Listens on `topic` of `db` until `stop_rx` turns true, telling `on_heard` what it hears.
/// On PostgreSQL a broken connection is reported [`Heard::Deaf`] and is opened again, with
/// a growing pause between attempts that fail. However the listening ends, even by a
/// panic, its last word is [`Heard::Deaf`].
pub fn listen(
    db: &Db,
    topic: &'static str,
    on_heard: impl Fn(Heard) + Send + Sync + 'static,
    mut stop_rx: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let db = db.clone();
    tokio::spawn(async move {
        let hearer = DeafWhenDropped(on_heard);
        let on_heard = &hearer.0;
        if db.backend() == Backend::Sqlite {
            on_heard(Heard::Listening);
            let _ = stop_rx.wait_for(|stop| *stop).await;
            return;
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            let broke = tokio::select! {
                broke = listen_once(&db, topic, on_heard) => broke,
                _ = stop_rx.wait_for(|stop| *stop) => return,
            };
            on_heard(Heard::Deaf);
            match broke {
                // It was listening, so the next attempt starts with the shortest pause.
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(error) => {
                    tracing::warn!(topic, error = %error, "cannot listen for changes");
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop_rx.wait_for(|stop| *stop) => return,
            }
        }
    })
}

/// Whoever hears the changes, told [`Heard::Deaf`] when listening ends.
struct DeafWhenDropped<F: Fn(Heard)>(F);

impl<F: Fn(Heard)> Drop for DeafWhenDropped<F> {
    fn drop(&mut self) {
        (self.0)(Heard::Deaf);
    }
}

/// Opens a listening connection and passes on what it hears until the connection breaks
/// (`Ok`); fails when it could not start listening.
async fn listen_once(
    db: &Db,
    topic: &str,
    on_heard: &(impl Fn(Heard) + Send + Sync),
) -> sqlx::Result<()> {
    let options =
        PgConnectOptions::from_str(db.url().expose_secret())?.application_name(LISTENER_NAME);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_with(options)
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A broken connection is replaced by this loop, which reports the gap; the listener
    // would otherwise open a new one by itself.
    listener.eager_reconnect(false);
    listener.listen(topic).await?;
    tracing::info!(topic, "listening for changes");
    on_heard(Heard::Listening);
    loop {
        // Receiving is safe to interrupt: a message is taken off the connection whole or
        // not at all.
        match tokio::time::timeout(QUIET_CHECK, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                on_heard(Heard::Changed(notification.payload().into()));
            }
            Ok(Ok(None)) => {
                tracing::warn!(topic, "the connection listening for changes broke");
                return Ok(());
            }
            Ok(Err(error)) => {
                tracing::warn!(topic, error = %error, "the connection listening for changes broke");
                return Ok(());
            }
            // A connection that died without a word (a dropped route, a peer that vanished)
            // is as quiet as one with nothing to say, and nothing else would notice it: it
            // must answer a statement to count as listening. What is announced meanwhile
            // is kept for the next receive.
            Err(_quiet) => {
                let answer = sqlx::query("SELECT 1").execute(&mut listener);
                if !matches!(tokio::time::timeout(ANSWER_WITHIN, answer).await, Ok(Ok(_))) {
                    tracing::warn!(
                        topic,
                        "the connection listening for changes stopped answering"
                    );
                    return Ok(());
                }
            }
        }
    }
}
