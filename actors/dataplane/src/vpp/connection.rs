//! The forwarder's connection to VPP, kept up: when the API socket drops (VPP stopped,
//! crashed or restarted) the supervisor connects again with backoff, and each new session
//! is announced on a watch channel so that the runtime reconciles — a restarted VPP has
//! forgotten every interface, and every `sw_if_index` the forwarder knew is void.
//!
//! Callers take the current client for each operation; while VPP is away they get a clear
//! error instead of waiting.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use nsm_vpp::client::{Client, Config, Error};
use tokio::sync::watch;

/// Backoff between reconnection attempts: doubles from the first to the last.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Connection {
    current: RwLock<Option<Client>>,
    /// Bumped on every new session after the first.
    sessions: watch::Sender<u64>,
}

impl Connection {
    /// Connects once (start-up fails if VPP cannot be reached), then supervises.
    pub(crate) async fn start(
        config: Config,
        required: &'static [&'static str],
        on_session: impl Fn() + Send + Sync + 'static,
    ) -> Result<Arc<Self>, Error> {
        let client = connect(&config, required).await?;
        let connection = Arc::new(Self {
            current: RwLock::new(Some(client.clone())),
            sessions: watch::channel(0).0,
        });
        let weak = Arc::downgrade(&connection);
        tokio::spawn(async move {
            let mut client = client;
            loop {
                let reason = client.closed().await;
                let Some(connection) = weak.upgrade() else {
                    return;
                };
                tracing::warn!(%reason, socket = %config.socket.display(), "lost VPP's API connection; reconnecting");
                *connection.current.write().expect("client lock") = None;
                drop(connection);
                client = match reconnect(&config, required, &weak).await {
                    Some(client) => client,
                    None => return,
                };
                let Some(connection) = weak.upgrade() else {
                    return;
                };
                on_session();
                *connection.current.write().expect("client lock") = Some(client.clone());
                connection.sessions.send_modify(|n| *n += 1);
                tracing::info!(socket = %config.socket.display(), "VPP's API connection is back; reconciling");
            }
        });
        Ok(connection)
    }

    /// The client of the current session, or why there is none.
    pub(crate) fn client(&self) -> Result<Client, String> {
        self.current
            .read()
            .expect("client lock")
            .clone()
            .ok_or_else(|| "VPP's API connection is down; reconnecting".to_owned())
    }

    /// Changes once per new session after the first.
    pub(crate) fn sessions(&self) -> watch::Receiver<u64> {
        self.sessions.subscribe()
    }

    /// The number of the current session (0 for the first), to tell whether something read
    /// from VPP was read in this session: after a restart every `sw_if_index` is void.
    pub(crate) fn session(&self) -> u64 {
        *self.sessions.borrow()
    }
}

async fn connect(config: &Config, required: &[&str]) -> Result<Client, Error> {
    let client = Client::connect(config.clone()).await?;
    client.require(required)?;
    Ok(client)
}

/// Tries until it connects, or until nobody holds the connection any more.
async fn reconnect(
    config: &Config,
    required: &[&str],
    alive: &std::sync::Weak<Connection>,
) -> Option<Client> {
    let mut wait = FIRST_RETRY;
    loop {
        tokio::time::sleep(wait).await;
        alive.upgrade()?;
        match connect(config, required).await {
            Ok(client) => return Some(client),
            Err(e) => {
                tracing::debug!(error = %e, retry_in = ?wait, "VPP is not back yet");
                wait = (wait * 2).min(LAST_RETRY);
            }
        }
    }
}
