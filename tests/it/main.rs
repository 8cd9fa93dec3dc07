//! The integration tests, one binary (as svix-server lays them out): it links
//! once and starts one moto for the whole run (`devstack::moto::Moto::shared`);
//! every test works under its own resource prefix, so they share it safely.
//! Modules are named after what they exercise: `devstack_*` the local-stack
//! emulations themselves, `ingest_*`/`deliver_*`/`settings_*` each function
//! against moto and through the Lambda Runtime API, `props_*` properties,
//! `reliability_*`/`security_*` the failure and trust rules, `stack_template`
//! the local stack against template.yaml.

mod arm64_bootstrap;
mod cargo_lambda_tools;
mod deliver_binary;
mod deliver_delivery;
mod deliver_scale;
mod devstack_esm;
mod devstack_function_url;
mod devstack_moto;
mod devstack_receiver;
mod devstack_runtime_api;
mod formats;
mod history;
mod ingest_registry;
mod ingest_stack;
mod ingest_support;
mod props_common;
mod props_deliver;
mod props_ingest;
mod props_settings;
mod queue_sqs;
mod reliability_aws_faults;
mod reliability_common;
mod reliability_concurrency;
mod reliability_deadline;
mod reliability_receivers;
mod security_secrets;
mod security_urls;
mod settings_api;
mod settings_binary;
mod stack_template;
mod store_dynamo;
mod template_rules;
mod trust_deliver;
mod trust_ingest;

use std::path::PathBuf;

/// devstack's echo Lambda (`cargo build --bins` builds it with the others).
pub fn echo_binary() -> PathBuf {
    devstack::runtime_api::workspace_binary("devstack-echo")
}

/// A per-test log file under the target directory.
pub fn log_path(test: &str) -> PathBuf {
    devstack::paths::target_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("devstack-test-logs")
        .join(format!("{test}.log"))
}
