//! The concurrency of one batch: at most `DELIVERY_CONCURRENCY` requests in
//! flight, at most `PER_HOST_CONCURRENCY` to one host, none started once the
//! invocation's deadline is too close, and a host that keeps failing at the
//! transport level is given up on for the rest of the batch.
//!
//! A slot is a worker task bound to one host: it takes that host's next job,
//! sends it, hands the result over a channel and takes the next, with no
//! round trip through a coordinator between two requests (the same shape as
//! a bare client's per-host workers). The coordinator only hands out slots:
//! a host gets at most `per_host` workers, all hosts together at most
//! `global`, and hosts waiting for a slot are served in turn as slots free
//! up. So a slow host never holds slots it cannot use, memory stays bounded
//! by the concurrency whatever the batch size, and the deadline is checked
//! right before each job starts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

/// Concurrency limits (both at least 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub global: usize,
    pub per_host: usize,
    /// Transport failures in a row that close a host for the batch (0: never).
    pub breaker: u32,
}

/// What a result says about its host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostSignal {
    /// The host answered.
    Answered,
    /// No answer: timeout, connection refused or reset.
    Unreachable,
    /// Says nothing about the host.
    Neutral,
}

/// Jobs that never started, by why.
#[derive(Debug)]
pub(crate) struct Leftovers<J> {
    /// Not started because the deadline came (or their worker died).
    pub not_started: Vec<J>,
    /// Not started because their host was closed by the breaker.
    pub tripped: Vec<J>,
}

struct HostQueue<J> {
    jobs: Vec<J>,
    next: AtomicUsize,
    closed: AtomicBool,
    unreachable_in_a_row: AtomicU32,
}

impl<J> HostQueue<J> {
    fn new(jobs: Vec<J>) -> Self {
        Self {
            jobs,
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            unreachable_in_a_row: AtomicU32::new(0),
        }
    }

    fn unclaimed(&self) -> usize {
        self.jobs
            .len()
            .saturating_sub(self.next.load(Ordering::Acquire))
    }

    fn open_with_work(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && self.unclaimed() > 0
    }
}

/// Which hosts wait for a slot, in turn, and how many workers each has.
struct Slots {
    workers: Vec<usize>,
    in_ring: Vec<bool>,
    ring: VecDeque<usize>,
}

impl Slots {
    fn new<J>(hosts: &[HostQueue<J>]) -> Self {
        let in_ring: Vec<bool> = hosts.iter().map(|h| !h.jobs.is_empty()).collect();
        let ring = (0..hosts.len()).filter(|&h| in_ring[h]).collect();
        Self {
            workers: vec![0; hosts.len()],
            in_ring,
            ring,
        }
    }

    /// Puts host `h` back in line if it is not already waiting.
    fn wait(&mut self, h: usize) {
        if !self.in_ring[h] {
            self.in_ring[h] = true;
            self.ring.push_back(h);
        }
    }

    /// The next host that may start one more worker, if any.
    fn next<J>(&mut self, hosts: &[HostQueue<J>], per_host: usize) -> Option<usize> {
        while let Some(h) = self.ring.pop_front() {
            self.in_ring[h] = false;
            if self.workers[h] < per_host && hosts[h].open_with_work() {
                self.workers[h] += 1;
                if self.workers[h] < per_host && hosts[h].unclaimed() > 0 {
                    self.wait(h);
                }
                return Some(h);
            }
        }
        None
    }
}

/// Runs the jobs queued per host: `work(job)` sends one; `classify` says
/// what its result means for the host; `done(job, result)` sees each result
/// in the caller's task, in completion order.
pub(crate) async fn run<J, T, W, Fut, C, D>(
    queues: Vec<Vec<J>>,
    limits: Limits,
    last_start: Option<Instant>,
    work: W,
    classify: C,
    mut done: D,
) -> Leftovers<J>
where
    J: Clone + Send + Sync + 'static,
    T: Send + 'static,
    W: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
    C: Fn(&T) -> HostSignal + Send + Sync + 'static,
    D: FnMut(J, T),
{
    let global = limits.global.max(1);
    let per_host = limits.per_host.max(1);
    let hosts: Arc<Vec<HostQueue<J>>> = Arc::new(queues.into_iter().map(HostQueue::new).collect());
    let shared = Arc::new(Worker {
        hosts: hosts.clone(),
        work,
        classify,
        breaker: limits.breaker,
        last_start,
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<(J, T)>();
    let mut slots = Slots::new(&hosts);
    let mut live = FuturesUnordered::new();
    loop {
        // Hand out free slots to waiting hosts, in turn.
        while live.len() < global && !shared.past_deadline() {
            let Some(h) = slots.next(&hosts, per_host) else {
                break;
            };
            let (w, tx) = (shared.clone(), tx.clone());
            live.push(track(h, tokio::spawn(async move { w.serve(h, tx).await })));
        }
        if live.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some((job, result)) = rx.recv() => done(job, result),
            Some((h, _ended)) = live.next() => {
                // A worker ends when its host has nothing left to claim, is
                // closed, or the deadline came; a panic loses its one job.
                slots.workers[h] -= 1;
                if hosts[h].open_with_work() {
                    slots.wait(h);
                }
            }
            else => break,
        }
    }
    // Every worker has ended, so everything they sent is in the channel.
    while let Ok((job, result)) = rx.try_recv() {
        done(job, result);
    }
    leftovers(&hosts)
}

/// The jobs no worker claimed, split by why.
fn leftovers<J: Clone>(hosts: &[HostQueue<J>]) -> Leftovers<J> {
    let mut left = Leftovers {
        not_started: Vec::new(),
        tripped: Vec::new(),
    };
    for q in hosts {
        let from = q.next.load(Ordering::Acquire).min(q.jobs.len());
        let rest = &q.jobs[from..];
        if q.closed.load(Ordering::Acquire) {
            left.tripped.extend_from_slice(rest);
        } else {
            left.not_started.extend_from_slice(rest);
        }
    }
    left
}

/// What every worker of a batch shares.
struct Worker<J, W, C> {
    hosts: Arc<Vec<HostQueue<J>>>,
    work: W,
    classify: C,
    breaker: u32,
    last_start: Option<Instant>,
}

impl<J: Clone, W, C> Worker<J, W, C> {
    fn past_deadline(&self) -> bool {
        self.last_start.is_some_and(|t| Instant::now() >= t)
    }

    /// Sends host `h`'s jobs one after the other until there are none left,
    /// the host is closed, or the deadline comes.
    async fn serve<T, Fut>(&self, h: usize, tx: mpsc::UnboundedSender<(J, T)>)
    where
        W: Fn(J) -> Fut,
        Fut: Future<Output = T>,
        C: Fn(&T) -> HostSignal,
    {
        let q = &self.hosts[h];
        loop {
            if q.closed.load(Ordering::Acquire) || self.past_deadline() {
                return;
            }
            let claim = q.next.fetch_add(1, Ordering::AcqRel);
            let Some(job) = q.jobs.get(claim).cloned() else {
                return;
            };
            let result = (self.work)(job.clone()).await;
            match (self.classify)(&result) {
                HostSignal::Answered => q.unreachable_in_a_row.store(0, Ordering::Release),
                HostSignal::Unreachable => {
                    let n = q.unreachable_in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
                    if self.breaker > 0 && n >= self.breaker {
                        q.closed.store(true, Ordering::Release);
                    }
                }
                HostSignal::Neutral => {}
            }
            if tx.send((job, result)).is_err() {
                return;
            }
        }
    }
}

async fn track(host: usize, handle: JoinHandle<()>) -> (usize, Result<(), JoinError>) {
    (host, handle.await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Default)]
    struct Gauge {
        now: AtomicUsize,
        max: AtomicUsize,
    }

    impl Gauge {
        fn enter(&self) {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.max.fetch_max(n, Ordering::SeqCst);
        }
        fn leave(&self) {
            self.now.fetch_sub(1, Ordering::SeqCst);
        }
        fn max(&self) -> usize {
            self.max.load(Ordering::SeqCst)
        }
    }

    fn limits(global: usize, per_host: usize, breaker: u32) -> Limits {
        Limits {
            global,
            per_host,
            breaker,
        }
    }

    /// GIVEN one slow host with half the jobs and five fast hosts
    /// THEN the limits hold and the slow host never starves the others.
    #[tokio::test]
    async fn limits_hold_and_a_slow_host_does_not_block_others() {
        let hosts = 6;
        let host_of: Arc<Vec<usize>> = Arc::new(
            (0..120)
                .map(|j| if j % 2 == 0 { 0 } else { 1 + j % (hosts - 1) })
                .collect(),
        );
        let mut queues: Vec<Vec<usize>> = vec![Vec::new(); hosts];
        for job in 0..120 {
            queues[host_of[job]].push(job);
        }
        let total = Arc::new(Gauge::default());
        let per: Arc<Vec<Gauge>> = Arc::new((0..hosts).map(|_| Gauge::default()).collect());
        let started = Instant::now();
        let mut fast_done = 0;
        let mut fast_done_at = None;
        let mut completed = Vec::new();
        let (t, p, ho) = (total.clone(), per.clone(), host_of.clone());
        let left = run(
            queues,
            limits(8, 2, 0),
            None,
            move |job| {
                let (total, per, h) = (t.clone(), p.clone(), ho[job]);
                async move {
                    total.enter();
                    per[h].enter();
                    let ms = if h == 0 { 20 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    per[h].leave();
                    total.leave();
                    (job, h)
                }
            },
            |_| HostSignal::Answered,
            |job, (j, h)| {
                assert_eq!(job, j);
                completed.push(job);
                if h != 0 {
                    fast_done += 1;
                    if fast_done == 60 {
                        fast_done_at = Some(started.elapsed());
                    }
                }
            },
        )
        .await;
        completed.sort_unstable();
        assert_eq!(completed, (0..120).collect::<Vec<_>>());
        assert!(left.not_started.is_empty() && left.tripped.is_empty());
        assert!(total.max() <= 8, "global {}", total.max());
        for (h, g) in per.iter().enumerate() {
            assert!(g.max() <= 2, "host {h}: {}", g.max());
        }
        // 60 slow jobs, 2 at a time, 20 ms each: ≥ 600 ms in all; the fast
        // hosts' 60 jobs must be long done before that.
        let fast = fast_done_at.expect("fast jobs finished");
        assert!(
            fast < Duration::from_millis(400),
            "fast hosts waited {fast:?}"
        );
    }

    #[tokio::test]
    async fn nothing_starts_after_the_last_start_time() {
        let last_start = Instant::now() + Duration::from_millis(120);
        let mut seen = Vec::new();
        let left = run(
            vec![(0..10).collect()],
            limits(4, 1, 0),
            Some(last_start),
            |job| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                job
            },
            |_| HostSignal::Answered,
            |job, _| seen.push(job),
        )
        .await;
        // started at ~0, 50, 100 ms; the 4th would start at ~150 ms
        assert_eq!(seen, [0, 1, 2]);
        assert_eq!(left.not_started, (3..10).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn an_unreachable_host_is_closed_after_the_breaker() {
        let mut seen = Vec::new();
        let left = run(
            vec![(0..10).collect(), vec![10, 11]],
            limits(4, 1, 3),
            None,
            |job| async move { job },
            |&job| {
                if job < 10 {
                    HostSignal::Unreachable
                } else {
                    HostSignal::Answered
                }
            },
            |job, _| seen.push(job),
        )
        .await;
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 10, 11]);
        assert_eq!(left.tripped, (3..10).collect::<Vec<_>>());
        assert!(left.not_started.is_empty());
    }

    #[tokio::test]
    async fn an_answer_resets_the_breaker() {
        let mut seen = 0;
        let left = run(
            vec![(0..10).collect()],
            limits(4, 1, 3),
            None,
            |job| async move { job },
            |&job| {
                if job % 3 == 2 {
                    HostSignal::Answered
                } else {
                    HostSignal::Unreachable
                }
            },
            |_, _| seen += 1,
        )
        .await;
        assert_eq!(seen, 10);
        assert!(left.tripped.is_empty());
    }

    #[tokio::test]
    async fn an_empty_plan_returns_at_once() {
        let left = run(
            vec![Vec::new(), Vec::new()],
            limits(4, 1, 3),
            None,
            |job| async move { job },
            |_| HostSignal::Answered,
            |_, _: usize| panic!("nothing to do"),
        )
        .await;
        assert!(left.not_started.is_empty() && left.tripped.is_empty());
    }
}
