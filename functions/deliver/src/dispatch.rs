//! The concurrency of one batch: at most `DELIVERY_CONCURRENCY` requests in
//! flight, at most `PER_HOST_CONCURRENCY` to one host, none started once the
//! invocation's deadline is too close, and a host that keeps failing at the
//! transport level is given up on for the rest of the batch.
//!
//! Jobs arrive while sending goes on ([`Batch::arrived`]: each read of the
//! plan makes its repositories' jobs ready), so the first requests start
//! with the first read. A host's queue stays ordered by the caller's rank
//! as jobs join it.
//!
//! A slot is a worker task bound to one host: it takes that host's next job,
//! sends it, hands the result over a channel and takes the next, with no
//! round trip through a coordinator between two requests (the same shape as
//! a bare client's per-host workers). The coordinator only hands out slots:
//! a host gets at most `per_host` workers (no more than it has jobs for),
//! all hosts together at most `global`, and hosts waiting for a slot are
//! served in turn as slots free up, each filled up to its limit before the
//! next: a host's queue then drains, and its repositories finish, early and
//! steadily instead of all hosts finishing together at the end. A slow host
//! never holds slots it cannot use, memory stays bounded by the concurrency
//! whatever the batch size, and the deadline is checked right before each
//! job starts.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use futures::stream::{FuturesUnordered, Stream, StreamExt};
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

/// A job ready to send: its host, and its place in that host's queue
/// (lower first; equal ranks keep their arrival order).
pub(crate) struct Ready<J> {
    pub host: usize,
    pub rank: u64,
    pub job: J,
}

/// The caller's side of a batch, called in the caller's task.
pub(crate) trait Batch<J, T> {
    /// What arrives from the caller's reads.
    type Read;
    /// A read arrived: the jobs it makes ready.
    fn arrived(&mut self, read: Self::Read) -> Vec<Ready<J>>;
    /// A job was sent, with its result (in completion order).
    fn done(&mut self, job: J, result: T);
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
    /// Unclaimed jobs, by rank.
    jobs: Mutex<VecDeque<(u64, J)>>,
    closed: AtomicBool,
    unreachable_in_a_row: AtomicU32,
}

impl<J> HostQueue<J> {
    fn new() -> Self {
        Self {
            jobs: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            unreachable_in_a_row: AtomicU32::new(0),
        }
    }

    /// The queue; a worker that panicked holding it left it consistent
    /// (every operation on it is a single push, pop or sort).
    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, J)>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn claim(&self) -> Option<J> {
        self.lock().pop_front().map(|(_, job)| job)
    }

    fn unclaimed(&self) -> usize {
        self.lock().len()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Which hosts wait for a slot, in turn, and how many workers each has.
#[derive(Default)]
struct Slots {
    workers: Vec<usize>,
    in_ring: Vec<bool>,
    ring: VecDeque<usize>,
}

impl Slots {
    /// Puts host `h` in line if it is not already waiting.
    fn wait(&mut self, h: usize) {
        if !self.in_ring[h] {
            self.in_ring[h] = true;
            self.ring.push_back(h);
        }
    }

    /// The next host that may start one more worker, if any: the host first
    /// in line until it has as many workers as it has jobs or its limit.
    fn next<J>(&mut self, hosts: &[Arc<HostQueue<J>>], per_host: usize) -> Option<usize> {
        while let Some(&h) = self.ring.front() {
            let q = &hosts[h];
            if !q.is_closed() && self.workers[h] < per_host.min(q.unclaimed()) {
                self.workers[h] += 1;
                return Some(h);
            }
            self.ring.pop_front();
            self.in_ring[h] = false;
        }
        None
    }
}

/// The hosts' queues, growing as jobs for new hosts arrive.
struct Hosts<J> {
    queues: Vec<Arc<HostQueue<J>>>,
    slots: Slots,
}

impl<J> Hosts<J> {
    /// Queues `ready` by host and rank and puts their hosts in line.
    fn add(&mut self, ready: Vec<Ready<J>>) {
        let mut touched = Vec::new();
        for r in ready {
            while self.queues.len() <= r.host {
                self.queues.push(Arc::new(HostQueue::new()));
                self.slots.workers.push(0);
                self.slots.in_ring.push(false);
            }
            self.queues[r.host].lock().push_back((r.rank, r.job));
            touched.push(r.host);
        }
        touched.sort_unstable();
        touched.dedup();
        for h in touched {
            // Stable: equal ranks keep their arrival order.
            self.queues[h]
                .lock()
                .make_contiguous()
                .sort_by_key(|(rank, _)| *rank);
            self.slots.wait(h);
        }
    }

    /// The jobs no worker claimed, split by why.
    fn leftovers(self) -> Leftovers<J> {
        let mut left = Leftovers {
            not_started: Vec::new(),
            tripped: Vec::new(),
        };
        for q in self.queues {
            let rest = q.lock().drain(..).map(|(_, job)| job).collect::<Vec<_>>();
            if q.is_closed() {
                left.tripped.extend(rest);
            } else {
                left.not_started.extend(rest);
            }
        }
        left
    }
}

/// Runs the jobs `reads` make ready (through `batch.arrived`) as they come:
/// `work(job)` sends one; `classify` says what its result means for the
/// host; `batch.done(job, result)` sees each result. Returns once every
/// read has arrived and every worker has ended.
pub(crate) async fn run<J, T, R, W, Fut, C, B>(
    reads: R,
    limits: Limits,
    last_start: Option<Instant>,
    work: W,
    classify: C,
    batch: &mut B,
) -> Leftovers<J>
where
    J: Clone + Send + 'static,
    T: Send + 'static,
    R: Stream<Item = B::Read>,
    W: Fn(J) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
    C: Fn(&T) -> HostSignal + Send + Sync + 'static,
    B: Batch<J, T>,
{
    let global = limits.global.max(1);
    let per_host = limits.per_host.max(1);
    let shared = Arc::new(Worker {
        work,
        classify,
        breaker: limits.breaker,
        last_start,
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<(J, T)>();
    let mut hosts = Hosts {
        queues: Vec::new(),
        slots: Slots::default(),
    };
    let mut live = FuturesUnordered::new();
    let mut reads = std::pin::pin!(reads.fuse());
    let mut reading = true;
    loop {
        // Hand out free slots to waiting hosts, in turn.
        while live.len() < global && !shared.past_deadline() {
            let Some(h) = hosts.slots.next(&hosts.queues, per_host) else {
                break;
            };
            let (w, q, tx) = (shared.clone(), hosts.queues[h].clone(), tx.clone());
            live.push(track(h, tokio::spawn(async move { w.serve(&q, tx).await })));
        }
        if live.is_empty() && !reading {
            break;
        }
        tokio::select! {
            biased;
            Some((job, result)) = rx.recv() => batch.done(job, result),
            Some((h, _ended)) = live.next(), if !live.is_empty() => {
                // A worker ends when its host has nothing left to claim, is
                // closed, or the deadline came; a panic loses its one job.
                hosts.slots.workers[h] -= 1;
                hosts.slots.wait(h);
            }
            read = reads.next(), if reading => match read {
                Some(read) => hosts.add(batch.arrived(read)),
                None => reading = false,
            },
        }
    }
    // Every worker has ended, so everything they sent is in the channel.
    while let Ok((job, result)) = rx.try_recv() {
        batch.done(job, result);
    }
    hosts.leftovers()
}

/// What every worker of a batch shares.
struct Worker<W, C> {
    work: W,
    classify: C,
    breaker: u32,
    last_start: Option<Instant>,
}

impl<W, C> Worker<W, C> {
    fn past_deadline(&self) -> bool {
        self.last_start.is_some_and(|t| Instant::now() >= t)
    }

    /// Sends the jobs of host queue `q` one after the other until there are
    /// none left, the host is closed, or the deadline comes.
    async fn serve<J: Clone, T, Fut>(&self, q: &HostQueue<J>, tx: mpsc::UnboundedSender<(J, T)>)
    where
        W: Fn(J) -> Fut,
        Fut: Future<Output = T>,
        C: Fn(&T) -> HostSignal,
    {
        loop {
            if q.is_closed() || self.past_deadline() {
                return;
            }
            let Some(job) = q.claim() else {
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
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// The tests' batch: reads of whole queues (queue `h` on host `h`,
    /// ranked in order), each result handed to a closure.
    struct Closure<D>(D);

    impl<T, D: FnMut(usize, T)> Batch<usize, T> for Closure<D> {
        type Read = Vec<(usize, u64, usize)>;
        fn arrived(&mut self, read: Self::Read) -> Vec<Ready<usize>> {
            let ready = read
                .into_iter()
                .map(|(host, rank, job)| Ready { host, rank, job });
            ready.collect()
        }
        fn done(&mut self, job: usize, result: T) {
            (self.0)(job, result)
        }
    }

    /// Every queue ready at once.
    async fn run_all<T, W, Fut, C>(
        queues: Vec<Vec<usize>>,
        limits: Limits,
        last_start: Option<Instant>,
        work: W,
        classify: C,
        done: impl FnMut(usize, T),
    ) -> Leftovers<usize>
    where
        T: Send + 'static,
        W: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
        C: Fn(&T) -> HostSignal + Send + Sync + 'static,
    {
        let read = queues.into_iter().enumerate().flat_map(|(h, q)| {
            q.into_iter()
                .enumerate()
                .map(move |(rank, job)| (h, rank as u64, job))
        });
        let reads = futures::stream::iter([read.collect()]);
        run(
            reads,
            limits,
            last_start,
            work,
            classify,
            &mut Closure(done),
        )
        .await
    }

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
        let left = run_all(
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
        let left = run_all(
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
        let left = run_all(
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
        let left = run_all(
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
        let left = run_all(
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

    /// GIVEN a host busy with its first read's jobs WHEN a second read adds
    /// a job ranked before the rest THEN it joins the queue in rank order.
    #[tokio::test]
    async fn late_jobs_join_their_host_queue_by_rank() {
        let first = vec![(0, 10, 1), (0, 20, 2), (0, 30, 3)];
        let reads = futures::stream::iter([first]).chain(futures::stream::once(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            vec![(0, 15, 4), (1, 0, 5)]
        }));
        let mut seen = Vec::new();
        let left = run(
            reads,
            limits(4, 1, 0),
            None,
            |job| async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                job
            },
            |_| HostSignal::Answered,
            &mut Closure(|job, _| seen.push(job)),
        )
        .await;
        assert_eq!(seen, [1, 5, 4, 2, 3]);
        assert!(left.not_started.is_empty() && left.tripped.is_empty());
    }
}
