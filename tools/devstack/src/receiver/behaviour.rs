//! What a [`Receiver`](super::Receiver) does with a request: answer, wait,
//! reset the connection, redirect, or decide per request with a script.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A scripted behaviour: called with the 0-based index of the request among
/// those received for the same path, returns what to do with it.
pub type Script = Arc<dyn Fn(usize) -> Behaviour + Send + Sync>;

/// How a receiver treats a request.
#[derive(Clone)]
pub enum Behaviour {
    /// Answer with this status, headers and body.
    Respond {
        /// HTTP status code.
        status: u16,
        /// Extra response headers, e.g. `Retry-After`.
        headers: Vec<(String, String)>,
        /// Response body.
        body: Bytes,
    },
    /// Wait, then behave as the inner behaviour.
    Delay(Duration, Box<Behaviour>),
    /// Close the connection with a TCP reset, answering nothing.
    Reset,
    /// Answer `302 Found` with this `Location`.
    Redirect(String),
    /// Decide per request.
    Script(Script),
}

impl Behaviour {
    /// Answer `status` with an empty body.
    pub fn status(status: u16) -> Behaviour {
        Behaviour::Respond {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// `200 OK`.
    pub fn ok() -> Behaviour {
        Behaviour::status(200)
    }

    /// Adds a response header (only to `Respond`; others are unchanged).
    pub fn with_header(mut self, name: &str, value: &str) -> Behaviour {
        if let Behaviour::Respond { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets the response body (only for `Respond`).
    pub fn with_body(mut self, new_body: impl Into<Bytes>) -> Behaviour {
        if let Behaviour::Respond { body, .. } = &mut self {
            *body = new_body.into();
        }
        self
    }

    /// Waits `delay`, then does `then`.
    pub fn delay(delay: Duration, then: Behaviour) -> Behaviour {
        Behaviour::Delay(delay, Box::new(then))
    }

    /// Resets the connection.
    pub fn reset() -> Behaviour {
        Behaviour::Reset
    }

    /// Redirects with 302 to `location`.
    pub fn redirect(location: impl Into<String>) -> Behaviour {
        Behaviour::Redirect(location.into())
    }

    /// Decides per request with `f(index_for_this_path)`, e.g. "503 twice
    /// then 200": `Behaviour::script(|i| if i < 2 { Behaviour::status(503) } else { Behaviour::ok() })`.
    pub fn script(f: impl Fn(usize) -> Behaviour + Send + Sync + 'static) -> Behaviour {
        Behaviour::Script(Arc::new(f))
    }

    /// Shorthand script: the behaviours in order, the last one repeating.
    pub fn sequence(steps: Vec<Behaviour>) -> Behaviour {
        Behaviour::script(move |i| {
            steps
                .get(i)
                .or_else(|| steps.last())
                .cloned()
                .unwrap_or_else(Behaviour::ok)
        })
    }
}

impl fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Behaviour::Respond {
                status,
                headers,
                body,
            } => f
                .debug_struct("Respond")
                .field("status", status)
                .field("headers", headers)
                .field("body_len", &body.len())
                .finish(),
            Behaviour::Delay(d, then) => f.debug_tuple("Delay").field(d).field(then).finish(),
            Behaviour::Reset => f.write_str("Reset"),
            Behaviour::Redirect(location) => f.debug_tuple("Redirect").field(location).finish(),
            Behaviour::Script(_) => f.write_str("Script(..)"),
        }
    }
}
