//! alin-webhooks shared library: the domain (names, URLs, events, jobs), the
//! webhook request contract, the ports the functions speak to, and the AWS and
//! HTTP adapters behind them. The three Lambda binaries are thin shells around
//! what lives here, so that everything is testable without a Lambda.

pub mod adapters;
pub mod aws;
pub mod config;
pub mod domain;
pub mod function_url;
pub mod net;
pub mod ports;
pub mod webhook;

pub use config::{Config, DeliveryPolicy};
