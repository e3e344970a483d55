//! RabbitMQ: the topology the bureau declares for itself, publishing with confirms, and the
//! consuming loop every stage runs.
//!
//! Per stage `S` (under the configured prefix `P`):
//! - `P.S`, a durable quorum queue bound to the direct exchange `P.work` with key `S`; its
//!   dead-letter exchange is `P.dead` and its delivery limit (`delivery_limit`) bounds
//!   redeliveries after crashes: a message that kills the worker every time ends there;
//! - `P.S.retry.<delay>ms`, five quorum queues whose messages expire after 1, 5, 25, 125, 625 ×
//!   `retry_base_ms` (capped at `retry_max_ms`) and then go back to `P.S`: retry with backoff
//!   without holding a consumer;
//! - `P.dead` (fanout exchange and quorum queue): what a stage gave up on, with the reason in
//!   the `x-failure-reason` header (and a row in `dead_letters`), and what the broker itself
//!   dead-lettered; `watch_dead_letters` turns the latter into rows too.
//!
//! Retries are bounded by time, not by count: a passing failure (a server down) is tried again
//! for `retry_for_s` after the first failure (the `x-failing-since` header), because outages
//! last hours; a crash does not count as a try (the `x-attempt` header only grows on a retry).
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
use tracing::Instrument;

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

const RETRY_LEVELS: u32 = 5;
const ATTEMPT_HEADER: &str = "x-attempt";
/// When the message first failed, in milliseconds since the epoch.
const FAILING_SINCE_HEADER: &str = "x-failing-since";
const FAILURE_REASON_HEADER: &str = "x-failure-reason";

/// Names of everything under one prefix, and the retry policy.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub retry_for_ms: u64,
    pub delivery_limit: u32,
}

impl Topology {
    pub fn from_config(cfg: &BrokerSection) -> Self {
        Self {
            prefix: cfg.prefix.clone(),
            retry_base_ms: cfg.retry_base_ms,
            retry_max_ms: cfg.retry_max_ms,
            retry_for_ms: cfg.retry_for_s.saturating_mul(1000),
            delivery_limit: cfg.delivery_limit,
        }
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
    /// Named by its delay: a queue's expiry cannot change once declared, so a new
    /// `retry_base_ms` or `retry_max_ms` declares new queues instead of refusing to start (the
    /// old ones still hand their messages back when they expire).
    pub fn retry_queue(&self, s: Stage, level: u32) -> String {
        format!("{}.{}.retry.{}ms", self.prefix, s.as_str(), self.retry_delay_ms(level))
    }
    /// Delay before attempt `attempt` (2 = first retry).
    pub fn retry_level(&self, attempt: u32) -> u32 {
        attempt.saturating_sub(1).clamp(1, RETRY_LEVELS)
    }
    fn retry_delay_ms(&self, level: u32) -> u64 {
        (self.retry_base_ms * 5u64.pow(level - 1)).min(self.retry_max_ms.max(self.retry_base_ms))
    }
}

/// One delivery of a message, as its handler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first try; grows with each retry, not with redeliveries after a crash.
    pub number: u32,
    /// The message has been failing for longer than the retry window: a passing failure now
    /// is the last one (the handler records the subject as failed).
    pub last: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn header_int(headers: Option<&FieldTable>, name: &str) -> Option<i64> {
    headers.and_then(|h| h.inner().get(name).cloned()).and_then(|v| match v {
        AMQPValue::LongInt(n) => Some(n as i64),
        AMQPValue::LongLongInt(n) => Some(n),
        AMQPValue::ShortInt(n) => Some(n as i64),
        AMQPValue::LongUInt(n) => Some(n as i64),
        AMQPValue::Timestamp(n) => Some(n as i64),
        _ => None,
    })
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
                ("x-delivery-limit", AMQPValue::LongInt(t.delivery_limit.max(1) as i32)),
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

    async fn publish_retry(&self, stage: Stage, payload: &[u8], attempt: u32, failing_since_ms: u64) -> Result<(), BrokerError> {
        let level = self.topology.retry_level(attempt);
        let headers = table(&[(ATTEMPT_HEADER, AMQPValue::LongInt(attempt as i32)), (FAILING_SINCE_HEADER, AMQPValue::LongLongInt(failing_since_ms as i64))]);
        self.publish_raw("", &self.topology.retry_queue(stage, level), payload, headers).await
    }

    async fn publish_dead(&self, stage: Stage, payload: &[u8], attempts: u32, reason: &str) -> Result<(), BrokerError> {
        let headers =
            table(&[(FAILURE_REASON_HEADER, text(reason)), ("x-failed-stage", text(stage.as_str())), (ATTEMPT_HEADER, AMQPValue::LongInt(attempts as i32))]);
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
        // Capped delays share a queue: each name once (deleting a missing queue closes the channel).
        queues.dedup();
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
    /// A passing failure (a server down): try again later, for as long as the retry window.
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
    F: Fn(Vec<u8>, Attempt) -> Fut,
    Fut: Future<Output = Handled>,
{
    let mut backoff = Duration::from_millis(200);
    while !*shutdown.borrow() {
        match consume_once(link, stage, prefetch, &mut shutdown, &on_dead, &handler).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(stage = stage.as_str(), error = %e, "lost the message broker; reconnecting");
                reconnect_pause(link, &mut shutdown, &mut backoff).await;
            }
        }
    }
}

/// After losing the broker: forget the connection and wait (doubling, up to 5 s) or until shutdown.
async fn reconnect_pause(link: &BrokerLink, shutdown: &mut watch::Receiver<bool>, backoff: &mut Duration) {
    link.forget().await;
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = shutdown.changed() => {}
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

/// The next delivery of a consumer, or `None` once shutdown comes (the consumer is cancelled and
/// the channel closed: unacknowledged prefetched messages go back to the queue).
async fn next_delivery(
    ch: &Channel,
    tag: &str,
    consumer: &mut lapin::Consumer,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Option<lapin::message::Delivery>, BrokerError> {
    let delivery = tokio::select! {
        d = consumer.next() => d,
        _ = shutdown.changed() => {
            let _ = ch.basic_cancel(tag.into(), BasicCancelOptions::default()).await;
            let _ = ch.close(200, "shutting down".into()).await;
            return Ok(None);
        }
    };
    match delivery {
        Some(Ok(d)) => Ok(Some(d)),
        Some(Err(e)) => Err(e.into()),
        None => Err(BrokerError::Unreachable(0, "consumer stream ended".into())),
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
    F: Fn(Vec<u8>, Attempt) -> Fut,
    Fut: Future<Output = Handled>,
{
    let broker = link.get().await?;
    let ch = broker.conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let tag = format!("{}-{}", stage.as_str(), std::process::id());
    let mut consumer =
        ch.basic_consume(broker.topology.queue(stage).into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    tracing::info!(stage = stage.as_str(), queue = %broker.topology.queue(stage), "consuming");
    loop {
        let Some(delivery) = next_delivery(&ch, &tag, &mut consumer, shutdown).await? else { return Ok(()) };
        let headers = delivery.properties.headers().as_ref();
        let number = header_int(headers, ATTEMPT_HEADER).unwrap_or(1).clamp(1, u32::MAX as i64) as u32;
        let now = now_ms();
        let failing_since = header_int(headers, FAILING_SINCE_HEADER).map(|t| t.max(0) as u64);
        let last = now.saturating_sub(failing_since.unwrap_or(now)) >= broker.topology.retry_for_ms;
        let span = tracing::info_span!("delivery", stage = stage.as_str(), attempt = number);
        let outcome = handler(delivery.data.clone(), Attempt { number, last }).instrument(span).await;
        let attempt = number;
        match outcome {
            Handled::Done => {}
            Handled::Retry(reason) if !last => {
                tracing::warn!(stage = stage.as_str(), attempt, %reason, "will retry");
                broker.publish_retry(stage, &delivery.data, attempt + 1, failing_since.unwrap_or(now)).await?;
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

/// Consumes the dead-letter queue until `shutdown`: what a stage dead-lettered itself is
/// already recorded and only acknowledged; what the broker dead-lettered (a message that
/// reached its delivery limit because the worker died on every delivery) is handed to
/// `on_dead` with the reason, so that it shows in the console like any other failure.
pub async fn watch_dead_letters(link: &BrokerLink, mut shutdown: watch::Receiver<bool>, on_dead: DeadLetterHook) {
    let mut backoff = Duration::from_millis(200);
    while !*shutdown.borrow() {
        match watch_dead_once(link, &mut shutdown, &on_dead).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, "lost the message broker while watching dead letters; reconnecting");
                reconnect_pause(link, &mut shutdown, &mut backoff).await;
            }
        }
    }
}

/// The stage a broker-made dead letter came from, and how many times it was delivered.
fn death_of(headers: Option<&FieldTable>, topology: &Topology) -> (Option<Stage>, u32) {
    let queue = headers.and_then(|h| h.inner().get("x-first-death-queue").cloned()).and_then(|v| match v {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    });
    let stage = queue.and_then(|q| Stage::ALL.into_iter().find(|s| topology.queue(*s) == q));
    let deliveries = header_int(headers, "x-delivery-count").map_or(topology.delivery_limit, |n| n.max(0) as u32);
    (stage, deliveries)
}

async fn watch_dead_once(link: &BrokerLink, shutdown: &mut watch::Receiver<bool>, on_dead: &DeadLetterHook) -> Result<(), BrokerError> {
    let broker = link.get().await?;
    let ch = broker.conn.create_channel().await?;
    ch.basic_qos(8, BasicQosOptions::default()).await?;
    let tag = format!("dead-{}", std::process::id());
    let mut consumer =
        ch.basic_consume(broker.topology.dead_queue().into(), tag.as_str().into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
    loop {
        let Some(delivery) = next_delivery(&ch, &tag, &mut consumer, shutdown).await? else { return Ok(()) };
        let headers = delivery.properties.headers().as_ref();
        let ours = headers.is_some_and(|h| h.inner().contains_key(FAILURE_REASON_HEADER));
        if !ours {
            let (stage, deliveries) = death_of(headers, &broker.topology);
            let stage = stage.unwrap_or(Stage::Process);
            let reason = format!("delivered {deliveries} times and never answered: the worker stopped while handling it each time (a crash, not an error)");
            tracing::error!(stage = stage.as_str(), deliveries, "the broker dead-lettered a message");
            on_dead(stage, delivery.data.clone(), deliveries, reason).await;
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology { prefix: "p".into(), retry_base_ms: 1000, retry_max_ms: 300_000, retry_for_ms: 86_400_000, delivery_limit: 5 }
    }

    #[test]
    fn retry_delays_grow_five_fold_up_to_the_cap() {
        let t = topology();
        let delays: Vec<u64> = (2..=8).map(|a| t.retry_delay_ms(t.retry_level(a))).collect();
        assert_eq!(delays, vec![1000, 5000, 25_000, 125_000, 300_000, 300_000, 300_000]);
    }

    #[test]
    fn retry_queues_are_named_by_their_delay_so_a_new_setting_declares_new_ones() {
        let t = topology();
        assert_eq!(t.retry_queue(Stage::Notify, 2), "p.notify.retry.5000ms");
        let faster = Topology { retry_max_ms: 2000, ..topology() };
        assert_ne!(faster.retry_queue(Stage::Notify, 3), t.retry_queue(Stage::Notify, 3));
        assert_eq!(faster.retry_queue(Stage::Notify, 4), faster.retry_queue(Stage::Notify, 5), "capped delays share one queue");
    }

    #[test]
    fn a_broker_dead_letter_names_its_stage_and_deliveries() {
        let t = topology();
        let h = table(&[("x-first-death-queue", text("p.notify")), ("x-delivery-count", AMQPValue::LongLongInt(5))]);
        assert_eq!(death_of(Some(&h), &t), (Some(Stage::Notify), 5));
        assert_eq!(death_of(None, &t), (None, 5));
    }
}
