//! The writer: puts one batch into ClickHouse. Behind a small trait so the
//! pipeline, batcher and spool are tested without a database and tests can
//! inject failures.
//!
//! Invariants: a batch is inserted with its deduplication token (spans with
//! the batch token, evaluations with a derived one), so writing the same batch
//! twice stores it once, rollups included; failures say whether a retry may
//! succeed ([`WriteError::Retryable`]) or ClickHouse refused the data itself.

use std::future::Future;
use std::sync::Arc;

use store::rows::{EvaluationRow, SpanRow, tables};
use store::{Store, StoreError};

use crate::batch::Batch;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The store is down, slow or overloaded: try again later.
    #[error("store unavailable: {0}")]
    Retryable(String),
    /// The store refused the data: retrying the same batch will fail again.
    #[error("store refused the batch: {0}")]
    Rejected(String),
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        if e.is_retryable() {
            WriteError::Retryable(e.to_string())
        } else {
            WriteError::Rejected(e.to_string())
        }
    }
}

impl From<clickhouse::error::Error> for WriteError {
    fn from(e: clickhouse::error::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Writes one batch, all or nothing as far as the caller knows (a partial
/// success is made whole by retrying with the same tokens).
pub trait BatchWriter: Send + Sync + 'static {
    fn write(&self, batch: &Batch) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// The real writer: `loupe.spans` and `loupe.evaluations` through the store.
pub struct StoreWriter {
    store: Arc<Store>,
}

impl StoreWriter {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }
}

impl BatchWriter for StoreWriter {
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        if !batch.spans.is_empty() {
            let mut ins = self
                .store
                .insert::<SpanRow>(tables::SPANS, Some(&batch.token))
                .await?;
            for r in batch.spans.iter() {
                ins.write(r).await?;
            }
            ins.end().await?;
        }
        if !batch.evaluations.is_empty() {
            let token = batch.evaluations_token();
            let mut ins = self
                .store
                .insert::<EvaluationRow>(tables::EVALUATIONS, Some(&token))
                .await?;
            for r in batch.evaluations.iter() {
                ins.write(r).await?;
            }
            ins.end().await?;
        }
        Ok(())
    }
}

impl<W: BatchWriter> BatchWriter for Arc<W> {
    fn write(&self, batch: &Batch) -> impl Future<Output = Result<(), WriteError>> + Send {
        W::write(self, batch)
    }
}
