//! Alert history in ClickHouse: the notifications decided on, delivery
//! outcomes, evaluator heartbeats, and rebuilding the firing set after a
//! restart. Row structs match `migrations/0003_alerts.sql` field for field
//! (`loupe.alert_events` is `store::rows::AlertEventRow`, which the dashboard reads).

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use store::rows::{AlertEventRow, tables};
use store::{Store, StoreError};

use crate::state::{AlertKey, Notification, Observation, Restored, Severity};

/// `loupe.alert_deliveries`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct DeliveryRow {
    pub time: i64,
    pub webhook: String,
    pub rule: String,
    pub tenant_id: String,
    pub subject: String,
    pub event: String,
    pub ok: bool,
    pub attempts: u8,
    pub status: u16,
    pub error: String,
}

/// `loupe.alert_heartbeats`.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct HeartbeatRow {
    pub time: i64,
    pub instance: String,
}

/// The history row of one notification.
pub fn event_row(n: &Notification) -> AlertEventRow {
    let o = &n.observation;
    AlertEventRow {
        time: i64::try_from(n.at).unwrap_or(i64::MAX).saturating_mul(1000),
        rule: o.key.rule.clone(),
        kind: o.kind.clone(),
        tenant_id: o.key.tenant.clone(),
        subject: o.key.subject.clone(),
        event: n.event.as_str().to_string(),
        severity: o.severity.as_str().to_string(),
        summary: o.summary.clone(),
        value: o.value,
        threshold: o.threshold,
        link: o.link.clone(),
        since: u32::try_from(n.since).unwrap_or(u32::MAX),
    }
}

/// Appends notifications to the history.
pub async fn record(store: &Store, notes: &[Notification]) -> Result<(), StoreError> {
    if notes.is_empty() {
        return Ok(());
    }
    let mut ins = store
        .insert::<AlertEventRow>(tables::ALERT_EVENTS, None)
        .await?;
    for n in notes {
        ins.write(&event_row(n)).await?;
    }
    Ok(ins.end().await?)
}

/// Appends delivery outcomes.
pub async fn record_deliveries(store: &Store, rows: &[DeliveryRow]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ins = store
        .insert::<DeliveryRow>(tables::ALERT_DELIVERIES, None)
        .await?;
    for r in rows {
        ins.write(r).await?;
    }
    Ok(ins.end().await?)
}

#[derive(Debug, Row, Deserialize)]
struct LastEvent {
    rule: String,
    tenant_id: String,
    subject: String,
    kind: String,
    severity: String,
    summary: String,
    value: f64,
    threshold: f64,
    link: String,
    since: u32,
    last_ms: i64,
}

/// The alerts whose last recorded event is not `resolved`: what was firing
/// when the previous evaluator stopped.
pub async fn restore(store: &Store) -> Result<Vec<Restored>, StoreError> {
    let rows: Vec<LastEvent> = store
        .reader()
        .query(
            "SELECT rule, tenant_id, subject, argMax(kind, time) AS kind, \
                    argMax(severity, time) AS severity, argMax(summary, time) AS summary, \
                    argMax(value, time) AS value, argMax(threshold, time) AS threshold, \
                    argMax(link, time) AS link, argMax(since, time) AS since, \
                    toInt64(toUnixTimestamp64Milli(max(time))) AS last_ms \
             FROM loupe.alert_events GROUP BY rule, tenant_id, subject \
             HAVING argMax(event, time) != 'resolved'",
        )
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| Restored {
            observation: Observation {
                key: AlertKey {
                    rule: r.rule,
                    tenant: r.tenant_id,
                    subject: r.subject,
                },
                kind: r.kind,
                severity: Severity::parse(&r.severity).unwrap_or(Severity::Warning),
                summary: r.summary,
                value: r.value,
                threshold: r.threshold,
                link: r.link,
            },
            since: u64::from(r.since),
            last_notified: u64::try_from(r.last_ms / 1000).unwrap_or(0),
        })
        .collect())
}

/// Records that `instance` is alive, and says whether it is the one that
/// evaluates: the instance with the smallest id among those seen within
/// `live_ms`. Deterministic, needs no lock; a brief overlap while instances
/// come and go is absorbed by the state's deduplication.
pub async fn heartbeat(
    store: &Store,
    instance: &str,
    now_ms: i64,
    live_ms: i64,
) -> Result<bool, StoreError> {
    let mut ins = store
        .insert::<HeartbeatRow>(tables::ALERT_HEARTBEATS, None)
        .await?;
    ins.write(&HeartbeatRow {
        time: now_ms,
        instance: instance.to_string(),
    })
    .await?;
    ins.end().await?;
    let leader: String = store
        .reader()
        .query(
            "SELECT min(instance) FROM loupe.alert_heartbeats \
             WHERE time >= fromUnixTimestamp64Milli({since:Int64})",
        )
        .param("since", now_ms - live_ms)
        .fetch_one()
        .await?;
    Ok(leader.is_empty() || leader == instance)
}
