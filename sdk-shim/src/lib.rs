//! The provider proxy: forwards OpenAI- and Anthropic-compatible calls and
//! captures each as one OTel GenAI span, exported over OTLP to the collector.
//!
//! Flow of one captured call: [`proxy`] reads and checks the request ([`request`]),
//! forwards it ([`provider`], [`headers`]), and returns the upstream response
//! through a [`tee`] body that feeds an [`accumulate`] accumulator as bytes pass
//! (hiding an injected usage chunk with [`strip`]); when the body ends — or the
//! client leaves — a [`record::Finished`] goes into the bounded [`export`] queue,
//! whose worker builds the [`span`] (with [`evaluate`]'s validation) and exports it.
//!
//! The embedding binary uses [`ShimConfig`], [`Shim::bind`] and [`Bound::serve`].

pub mod accumulate;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod export;
pub mod headers;
pub mod provider;
pub mod proxy;
pub mod record;
pub mod request;
pub mod server;
pub mod span;
pub mod sse;
pub mod strip;
pub mod tee;

pub use config::{OtlpProtocol, RouteRule, ShimConfig};
pub use error::{ProxyError, ShimError};
pub use server::{Bound, Shim};
