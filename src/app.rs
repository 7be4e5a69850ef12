//! The shared handles every layer serves from: settings, database, fan-out, presence, limits and
//! the rest, built once at start. Handles only: what is done with them lives with each owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::auth::Keys;
use crate::config::Config;
use crate::deliveries::Deliveries;
use crate::drain::Drain;
use crate::files::Disk;
use crate::hub::Hub;
use crate::janitor::Janitor;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::model::UserId;
use crate::presence::Presence;
use crate::store::Store;
use crate::telegram::{self, Bridge};
use crate::thumbnails::Thumbnails;
use crate::webhooks::{self, Webhooks};

/// Everything a request handler may use.
pub struct App {
    /// The settings the server runs with.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Per-user fan-out of events.
    pub hub: Arc<Hub>,
    /// Who is online.
    pub presence: Arc<Presence>,
    /// Delivered receipts for what reached recipients' streams and polls.
    pub deliveries: Arc<Deliveries>,
    /// The token secret and the service key.
    pub keys: Keys,
    /// Users seen by this process, with a hash of the profile last stored for them.
    pub seen: Mutex<HashMap<UserId, u64>>,
    /// Becomes true when the server starts shutting down.
    pub stop_tx: watch::Sender<bool>,
    /// Ticks every `ping_interval`: one clock for every stream's keep-alive, not a timer each.
    pub ping_tx: watch::Sender<()>,
    /// Webhook settings and the outbox worker's wake-up.
    pub webhooks: Arc<Webhooks>,
    /// What `/metrics` exports.
    pub metrics: Arc<Metrics>,
    /// The bound on thumbnail decodes.
    pub thumbnails: Arc<Thumbnails>,
    /// Where uploads live on disk.
    pub disk: Disk,
    /// What one caller may take: request rates and open streams.
    pub limits: Arc<Limits>,
    /// Shutdown as requests see it: refused once it begins, counted until answered.
    pub drain: Drain,
    /// The support chats' bridge to Telegram, when configured.
    pub telegram: Option<Arc<Bridge>>,
}

impl App {
    /// Opens the data directory (database, migrations, secrets) and builds the handles.
    pub fn open(config: Config) -> anyhow::Result<Arc<App>> {
        let metrics = Arc::new(Metrics::new());
        let (store, hub) = Store::open(&config, metrics.clone())?;
        let keys = Keys::new(config.token_secret()?, config.host_key()?);
        let presence = Presence::new(
            store.clone(),
            hub.clone(),
            config.poll_presence,
            config.presence_group_limit,
        );
        let deliveries = Deliveries::new(crate::deliveries::Sink::Store(store.clone()));
        let webhooks = Webhooks::new(&config)?;
        let thumbnails = Thumbnails::new(
            config.thumbnail_decodes,
            config.thumbnail_memory,
            metrics.thumbnails.clone(),
        );
        let limits = Limits::new(&config, metrics.clone());
        let disk = Disk::new(config.files_dir());
        let telegram = match (&config.telegram, &config.support_user) {
            (Some(settings), Some(support)) => {
                Some(Bridge::new(settings.clone(), support.clone())?)
            }
            _ => None,
        };
        Ok(Arc::new(App {
            config,
            store,
            hub,
            presence,
            deliveries,
            keys,
            seen: Mutex::default(),
            stop_tx: watch::channel(false).0,
            ping_tx: watch::channel(()).0,
            webhooks,
            metrics,
            thumbnails,
            disk,
            limits,
            drain: Drain::default(),
            telegram,
        }))
    }

    /// The handles maintenance uses.
    pub fn janitor(&self) -> Janitor {
        Janitor {
            store: self.store.clone(),
            files: self.disk.clone(),
            presence: self.presence.clone(),
            limits: self.limits.clone(),
            retention: self.config.retention,
            orphan_ttl: self.config.orphan_ttl,
            interval: self.config.janitor_interval,
        }
    }

    /// The handles the webhook worker uses.
    pub fn webhook_worker(&self) -> webhooks::Worker {
        webhooks::Worker {
            store: self.store.clone(),
            webhooks: self.webhooks.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// The handles the Telegram outbox worker uses, when the bridge is configured.
    pub fn telegram_worker(&self) -> Option<telegram::outbound::Worker> {
        Some(telegram::outbound::Worker {
            store: self.store.clone(),
            disk: self.disk.clone(),
            bridge: self.telegram.clone()?,
        })
    }

    /// Changes every ping interval: streams send a keep-alive comment when it does.
    pub fn pings(&self) -> watch::Receiver<()> {
        let mut rx = self.ping_tx.subscribe();
        rx.mark_unchanged();
        rx
    }

    /// Becomes true when the server starts shutting down: streams end, polls answer. Wait on it
    /// with `wait_for(|s| *s)`, which also sees a shutdown that began before the call.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop_tx.subscribe()
    }
}
