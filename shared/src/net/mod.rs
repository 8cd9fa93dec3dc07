//! Outbound HTTP with the address rule enforced where it matters: at connect
//! time, on the addresses a name resolves to then (DNS rebinding and names
//! pointing inside are refused), with redirects never followed; and the TLS
//! every outbound client of a function shares (`tls`, `sdk_http`).

pub mod client;
pub mod resolver;
pub mod sdk_http;
pub mod tls;

pub use client::{webhook_client, ClientError, ClientOptions};
pub use resolver::{
    check_resolved, GuardedResolver, NameLookup, ResolveError, StaticLookup, SystemLookup,
};
pub use sdk_http::find_source;
pub use tls::TlsError;
