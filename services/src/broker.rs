//! RabbitMQ: the topology the bureau declares for itself, publishing with confirms, and the
//! consuming loop every stage runs.
//!
//! Per stage `S` (under the configured prefix `P`):
//! - `P.S`, a durable quorum queue bound to the direct exchange `P.work` with key `S`; its
//!   dead-letter exchange is `P.dead` and its delivery limit bounds redeliveries after crashes;
//! - `P.S.retry.1..3`, quorum queues whose messages expire after 1, 5, 25 × `retry_base_ms`
//!   and then go back to `P.S`: retry with backoff without holding a consumer;
//! - `P.dead` (fanout exchange and quorum queue): what a stage gave up on, with the reason in
//!   the `x-failure-reason` header (and a row in `dead_letters`).
//!
//! A message is acknowledged only after the stage's database transaction committed; a retry or
//! a dead letter is published (and confirmed) before the original is acknowledged.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use thiserror::Error;
use tokio::sync::{Mutex, watch};

use crate::settings::BrokerSection;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("message broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("message broker did not confirm a publish to {0}")]
    NotConfirmed(String),
    #[error("message broker not reachable after {0} s: {1}")]
    Unreachable(u64, String),
}

/// The stages that have a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A stored mailing to cut, classify and file.
    Process,
    /// A mailing a supervisor prioritised: consumed beside `Process`, so it does not wait
    /// behind the backlog.
    Urgent,
    /// A notice of the outbox to send.
    Notify,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Process, Stage::Urgent, Stage::Notify];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Process => "process",
            Stage::Urgent => "urgent",
            Stage::Notify => "notify",
        }
    }
}

const RETRY_LEVELS: u32 = 3;
const ATTEMPT_HEADER: &str = "x-attempt";

/// Names of everything under one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub retry_base_ms: u64,
    pub max_attempts: u32,
}

impl Topology {
    pub fn from_config(cfg: &BrokerSection) -> Self {
        Self { prefix: cfg.prefix.clone(), retry_base_ms: cfg.retry_base_ms, max_attempts: cfg.max_attempts }
    }
    pub fn work_exchange(&self) -> String {
        format!("{}.work", self.prefix)
    }
    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }
    pub fn queue(&self, s: Stage) -> String {
        format!("{}.{}", self.prefix, s.as_str())
    }
    pub fn retry_queue(&self, s: Stage, level: u32) -> String {
        format!("{}.{}.retry.{level}", self.prefix, s.as_str())
    }
    /// Delay before attempt `attempt` (2 = first retry).
    pub fn retry_level(&self, attempt: u32) -> u32 {
        attempt.saturating_sub(1).clamp(1, RETRY_LEVELS)
    }
    fn retry_delay_ms(&self, level: u32) -> u64 {
        self.retry_base_ms * 5u64.pow(level - 1)
    }
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// One connection with a confirming publish channel.
pub struct Broker {
    conn: Connection,
    publisher: Channel,
    pub topology: Topology,
}

impl Broker {
    /// Connects, waiting up to `broker.connect_timeout_s` (RabbitMQ can take a minute to accept
    /// connections after a start), then declares the topology.
    pub async fn connect(cfg: &BrokerSection, name: &str) -> Result<Self, BrokerError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.connect_timeout_s);
        let mut delay = Duration::from_millis(200);
        let conn = loop {
            let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
            match Connection::connect(cfg.url.expose(), props).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() + delay < deadline => {
                    tracing::info!(error = %e, "message broker not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(BrokerError::Unreachable(cfg.connect_timeout_s, e.to_string())),
            }
        };
        let publisher = conn.create_channel().await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await?;
        let broker = Self { conn, publisher, topology: Topology::from_config(cfg) };
        broker.declare().await?;
        Ok(broker)
    }

    pub fn is_connected(&self) -> bool {
        self.conn.status().connected() && self.publisher.status().connected()
    }

    async fn declare(&self) -> Result<(), BrokerError> {
        let t = &self.topology;
        let ch = &self.publisher;
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        ch.exchange_declare(t.work_exchange().into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
        ch.exchange_declare(t.dead_exchange().into(), ExchangeKind::Fanout, durable, FieldTable::default()).await?;
        let qopts = QueueDeclareOptions { durable: true, ..Default::default() };
        let quorum = ("x-queue-type", text("quorum"));
        ch.queue_declare(t.dead_queue().into(), qopts, table(std::slice::from_ref(&quorum))).await?;
        ch.queue_bind(t.dead_queue().into(), t.dead_exchange().into(), "".into(), QueueBindOptions::default(), FieldTable::default()).await?;
        for s in Stage::ALL {
            let args = table(&[
                quorum.clone(),
                ("x-dead-letter-exchange", text(&t.dead_exchange())),
                // Redeliveries after a worker died count too: a message that kills every worker
                // that takes it ends in the dead-letter queue instead of looping.
                ("x-delivery-limit", AMQPValue::LongInt((t.max_attempts + 2) as i32)),
            ]);
            ch.queue_declare(t.queue(s).into(), qopts, args).await?;
            ch.queue_bind(t.queue(s).into(), t.work_exchange().into(), s.as_str().into(), QueueBindOptions::default(), FieldTable::default()).await?;
            for level in 1..=RETRY_LEVELS {
                let args = table(&[
                    quorum.clone(),
                    ("x-message-ttl", AMQPValue::LongLongInt(t.retry_delay_ms(level) as i64)),
                    ("x-dead-letter-exchange", text(&t.work_exchange())),
                    ("x-dead-letter-routing-key", text(s.as_str())),
                ]);
                ch.queue_declare(t.retry_queue(s, level).into(), qopts, args).await?;
            }
        }
        Ok(())
    }

    async fn publish_raw(&self, exchange: &str, key: &str, payload: &[u8], headers: FieldTable) -> Result<(), BrokerError> {
        let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into()).with_headers(headers);
        let confirm = self.publisher.basic_publish(exchange.into(), key.into(), BasicPublishOptions::default(), payload, props).await?.await?;
        if confirm.is_ack() { Ok(()) } else { Err(BrokerError::NotConfirmed(format!("{exchange}/{key}"))) }
    }

    /// Queues work for a stage (first attempt).
    pub async fn publish(&self, stage: Stage, payload: &[u8]) -> Result<(), BrokerError> {
        self.publish_raw(&self.topology.work_exchange(), stage.as_str(), payload, table(&[(ATTEMPT_HEADER, AMQPValue::LongInt(1))])).await
    }

    async fn publish_retry(&self, stage: Stage, payload: &[u8], attempt: u32) -> Result<(), BrokerError> {
        let level = self.topology.retry_level(attempt);
        self.publish_raw("", &self.topology.retry_queue(stage, level), payload, table(&[(ATTEMPT_HEADER, AMQPValue::LongInt(attempt as i32))])).await
    }

    async fn publish_dead(&self, stage: Stage, payload: &[u8], attempts: u32, reason: &str) -> Result<(), BrokerError> {
        let headers = table(&[
            ("x-failure-reason", text(reason)),
            ("x-failed-stage", text(stage.as_str())),
            (ATTEMPT_HEADER, AMQPValue::LongInt(attempts as i32)),
        ]);
        self.publish_raw(&self.topology.dead_exchange(), "", payload, headers).await
    }

    /// Messages waiting in a queue (metrics).
    pub async fn depth(&self, queue: &str) -> Result<u32, BrokerError> {
        let q = self.publisher.queue_declare(queue.into(), QueueDeclareOptions { passive: true, ..Default::default() }, FieldTable::default()).await?;
        Ok(q.message_count())
    }

    pub async fn close(&self) {
        let _ = self.conn.close(200, "shutting down".into()).await;
    }

    /// Deletes every queue and exchange of this prefix, with their messages (a test's or a
    /// retired bureau's).
    pub async fn delete_topology(&self) -> Result<(), BrokerError> {
        use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
        let t = &self.topology;
        let mut queues = vec![t.dead_queue()];
        for s in Stage::ALL {
            queues.push(t.queue(s));
            queues.extend((1..=RETRY_LEVELS).map(|l| t.retry_queue(s, l)));
        }
        for q in queues {
            self.publisher.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await?;
        }
        for e in [t.work_exchange(), t.dead_exchange()] {
            self.publisher.exchange_delete(e.as_str().into(), ExchangeDeleteOptions::default()).await?;
        }
        Ok(())
    }
}

/// A broker connection shared by a process's tasks, reopened when it drops.
pub struct BrokerLink {
    cfg: BrokerSection,
    name: String,
    current: Mutex<Option<std::sync::Arc<Broker>>>,
}

impl BrokerLink {
    pub fn new(cfg: BrokerSection, name: &str) -> Self {
        Self { cfg, name: name.to_string(), current: Mutex::new(None) }
    }

    pub fn topology(&self) -> Topology {
        Topology::from_config(&self.cfg)
    }

    /// The live connection, connecting (and waiting) if there is none.
    pub async fn get(&self) -> Result<std::sync::Arc<Broker>, BrokerError> {
        let mut guard = self.current.lock().await;
        if let Some(b) = guard.as_ref()
            && b.is_connected()
        {
            return Ok(b.clone());
        }
        let b = std::sync::Arc::new(Broker::connect(&self.cfg, &self.name).await?);
        *guard = Some(b.clone());
        Ok(b)
    }

    /// Publishes, reconnecting once if the connection was lost.
    pub async fn publish(&self, stage: Stage, payload: &[u8]) -> Result<(), BrokerError> {
        match self.get().await?.publish(stage, payload).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "publish failed; reconnecting once");
                self.forget().await;
                self.get().await?.publish(stage, payload).await
            }
        }
    }

    pub async fn forget(&self) {
        *self.current.lock().await = None;
    }

    pub async fn is_ready(&self) -> bool {
        self.current.lock().await.as_ref().is_some_and(|b| b.is_connected())
    }

    pub async fn close(&self) {
        if let Some(b) = self.current.lock().await.take() {
            b.close().await;
        }
    }
}

/// What a stage's handler made of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Done (or already done before): acknowledge.
    Done,
    /// A passing failure (a server down): try again later, up to the attempt limit.
    Retry(String),
    /// The message can never succeed (unreadable, unknown subject): dead-letter it now.
    Reject(String),
}

/// Called when a message is dead-lettered, to record it (stage, payload, attempts, reason).
pub type DeadLetterHook = std::sync::Arc<dyn Fn(Stage, Vec<u8>, u32, String) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// Consumes a stage's queue until `shutdown` turns true, reconnecting after a broker failure.
/// A message being handled when shutdown comes is finished and acknowledged first.
pub async fn run_stage<F, Fut>(link: &BrokerLink, stage: Stage, prefetch: u16, mut shutdown: watch::Receiver<bool>, on_dead: DeadLetterHook, handler: F)
where
    F: Fn(Vec<u8>, u32) -> Fut,
    Fut: Future<Output = Handled>,
{
    let mut backoff = Duration::from_millis(200);
    while !*shutdown.borrow() {
        match consume_once(link, stage, prefetch, &mut shutdown, &on_dead, &handler).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(stage = stage.as_str(), error = %e, "lost the message broker; reconnecting");
                link.forget().await;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn consume_once<F, Fut>(
    link: &BrokerLink,
    stage: Stage,
    prefetch: u16,
    shutdown: &mut watch::Receiver<bool>,
    on_dead: &DeadLetterHook,
    handler: &F,
) -> Result<(), BrokerError>
where
    F: Fn(Vec<u8>, u32) -> Fut,
    Fut: Future<Output = Handled>,
{
    let broker = link.get().await?;
    let ch = broker.conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let tag = format!("{}-{}", stage.as_str(), std::process::id());
    let mut consumer = ch.basic_consume(broker.topology.queue(stage).into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    tracing::info!(stage = stage.as_str(), queue = %broker.topology.queue(stage), "consuming");
    loop {
        let delivery = tokio::select! {
            d = consumer.next() => d,
            _ = shutdown.changed() => {
                let _ = ch.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                // Unacknowledged prefetched messages go back to the queue when the channel closes.
                let _ = ch.close(200, "shutting down".into()).await;
                return Ok(());
            }
        };
        let delivery = match delivery {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.into()),
            None => return Err(BrokerError::Unreachable(0, "consumer stream ended".into())),
        };
        let attempt = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
            .and_then(|v| match v {
                AMQPValue::LongInt(n) => Some(n.max(1) as u32),
                AMQPValue::LongLongInt(n) => Some(n.max(1) as u32),
                AMQPValue::ShortInt(n) => Some(n.max(1) as u32),
                _ => None,
            })
            .unwrap_or(1);
        let outcome = handler(delivery.data.clone(), attempt).await;
        let max = broker.topology.max_attempts;
        match outcome {
            Handled::Done => {}
            Handled::Retry(reason) if attempt < max => {
                tracing::warn!(stage = stage.as_str(), attempt, %reason, "will retry");
                broker.publish_retry(stage, &delivery.data, attempt + 1).await?;
            }
            Handled::Retry(reason) | Handled::Reject(reason) => {
                tracing::error!(stage = stage.as_str(), attempt, %reason, "dead-lettered");
                broker.publish_dead(stage, &delivery.data, attempt, &reason).await?;
                on_dead(stage, delivery.data.clone(), attempt, reason).await;
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}
