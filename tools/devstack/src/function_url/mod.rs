//! An emulation of a Lambda Function URL (auth type NONE): an HTTP server on
//! 127.0.0.1 that turns each request into a payload-format-2.0 event
//! ([`event`]), invokes an [`Invoker`] and maps the result back to an HTTP
//! response by the Function URL rules ([`response`]). One server per
//! function; it stops when the [`FunctionUrl`] is dropped.

pub mod event;
pub mod response;

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

use crate::http_server::{self, json_response, ConnInfo, Reply, ServerHandle};
use crate::invoker::Invoker;
use crate::{util, DevstackError};

pub use crate::invoker::{invoker_fn, FnInvoker};

/// Lambda's synchronous invocation payload limit. Bodies up to this size are
/// passed to the function, which decides what it accepts; larger ones are
/// refused the way the Function URL front end refuses them.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// A running Function URL.
pub struct FunctionUrl {
    server: ServerHandle,
    url_id: String,
}

impl FunctionUrl {
    /// Serves `invoker` on a free port of 127.0.0.1 in a background task.
    /// Pass an `Arc<LocalFunction>` to share one function with other event
    /// sources.
    pub async fn serve<I: Invoker>(invoker: I) -> Result<FunctionUrl, DevstackError> {
        let invoker = Arc::new(invoker);
        // Function URL ids are 32 lowercase alphanumerics; hex is a subset.
        let url_id = util::random_hex(16);
        let id = url_id.clone();
        let server = http_server::serve("Function URL", false, move |req, info| {
            handle(invoker.clone(), id.clone(), req, info)
        })
        .await?;
        Ok(FunctionUrl { server, url_id })
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, without the trailing slash AWS shows, so
    /// `format!("{}/path", url.url())` does not double it.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The emulated URL id (the `apiId`/`domainPrefix` of the events).
    pub fn url_id(&self) -> &str {
        &self.url_id
    }
}

async fn handle<I: Invoker>(
    invoker: Arc<I>,
    url_id: String,
    req: Request<Incoming>,
    info: ConnInfo,
) -> Reply {
    let (parts, body) = req.into_parts();
    let too_large = || {
        json_response(
            413,
            &json!({"Message": format!("Request must be smaller than {MAX_BODY_BYTES} bytes for the InvokeFunction operation")}),
        )
    };
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Reply::Response(too_large()),
        Err(e) => {
            return Reply::Response(json_response(
                400,
                &json!({"Message": format!("bad request body: {e}")}),
            ));
        }
    };
    let event = event::build(
        &parts,
        &body,
        info.peer,
        info.local,
        &url_id,
        time::OffsetDateTime::now_utc(),
    );
    let result = invoker.invoke_event(event).await;
    Reply::Response(response::from_result(result))
}
