//! Outbound HTTP with the address rule enforced where it matters: at connect
//! time, on the addresses a name resolves to then (DNS rebinding and names
//! pointing inside are refused), with redirects never followed.

pub mod client;
pub mod resolver;

pub use client::{webhook_client, ClientOptions};
pub use resolver::{
    check_resolved, GuardedResolver, NameLookup, ResolveError, StaticLookup, SystemLookup,
};
