//! A latency histogram that the server's worker threads record into without meeting.
//!
//! prometheus-client's `Histogram` keeps its counts behind one mutex, which every request on
//! every worker took: with `metrics = false` both hot paths ran 2 to 3 points of the ceiling
//! faster. This one gives each thread one of [`SHARDS`] sets of atomic counters, each set on
//! cache lines of its own, and adds them up when scraped. Threads that share a set (more
//! threads than sets) still count correctly, every counter being an atomic; they only write
//! the same cache lines again.
//!
//! A scrape that runs while requests are recorded may see one observation's sum without its
//! bucket or the other way round; `_count` is always the sum of the buckets it reports, so
//! the exposition stays self-consistent (`+Inf` equals `_count`).

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Enough for the tokio workers of a machine with a few cores plus the odd blocking thread.
const SHARDS: usize = 8;

/// A histogram of durations with `B` finite upper bounds (and `+Inf`).
#[derive(Debug, Clone)]
pub(crate) struct ShardedHistogram<const B: usize> {
    inner: Arc<Inner<B>>,
}

#[derive(Debug)]
struct Inner<const B: usize> {
    /// Upper bounds in seconds, for the exposition.
    bounds: [f64; B],
    /// The same in nanoseconds, to place an observation without floating point.
    bounds_nanos: [u64; B],
    shards: [Shard<B>; SHARDS],
}

/// One thread's counters. Aligned to two cache lines so that no two shards share a line
/// (adjacent-line prefetching pairs lines on x86).
#[derive(Debug)]
#[repr(align(128))]
struct Shard<const B: usize> {
    /// Observations per bucket (not cumulative): `buckets[i]` counts those in
    /// `(bounds[i-1], bounds[i]]`.
    buckets: [AtomicU64; B],
    /// Observations above the last bound.
    over: AtomicU64,
    sum_nanos: AtomicU64,
}

impl<const B: usize> ShardedHistogram<B> {
    /// `bounds`: finite upper bounds in seconds, ascending.
    pub(crate) fn new(bounds: [f64; B]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]) && bounds.iter().all(|b| *b > 0.0));
        ShardedHistogram {
            inner: Arc::new(Inner {
                bounds,
                bounds_nanos: bounds.map(|s| Duration::from_secs_f64(s).as_nanos() as u64),
                shards: std::array::from_fn(|_| Shard {
                    buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                    over: AtomicU64::new(0),
                    sum_nanos: AtomicU64::new(0),
                }),
            }),
        }
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let shard = &self.inner.shards[this_thread_shard()];
        match self.inner.bounds_nanos.iter().position(|b| nanos <= *b) {
            Some(i) => shard.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => shard.over.fetch_add(1, Ordering::Relaxed),
        };
        // Wraps after 584 years of summed latency; Prometheus treats a drop as a reset.
        shard.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, per-bucket counts with +Inf last)`, added up over the shards.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = self
            .inner
            .bounds
            .iter()
            .map(|b| (*b, 0))
            .chain(std::iter::once((f64::INFINITY, 0)))
            .collect();
        let mut sum_nanos = 0u64;
        for shard in &self.inner.shards {
            for (i, n) in shard.buckets.iter().enumerate() {
                buckets[i].1 += n.load(Ordering::Relaxed);
            }
            buckets[B].1 += shard.over.load(Ordering::Relaxed);
            sum_nanos = sum_nanos.wrapping_add(shard.sum_nanos.load(Ordering::Relaxed));
        }
        let count = buckets.iter().map(|(_, n)| n).sum();
        (sum_nanos as f64 / 1e9, count, buckets)
    }
}

/// The shard this thread records into, handed out in turn as threads first record.
fn this_thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

impl<const B: usize> TypedMetric for ShardedHistogram<B> {
    const TYPE: MetricType = MetricType::Histogram;
}

impl<const B: usize> EncodeMetric for ShardedHistogram<B> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;

    const BOUNDS: [f64; 4] = [0.0001, 0.001, 0.5, 2.0];

    fn exposition(metric: impl EncodeMetric + Send + Sync + std::fmt::Debug + 'static) -> String {
        let mut registry = Registry::default();
        registry.register("latency", "help", metric);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    }

    /// Observations on the bounds, between them, above the last and of zero, each recorded
    /// by both histograms: the expositions must be the same text, sums included (ours adds
    /// whole nanoseconds, theirs seconds as floats; for these values they print the same).
    #[test]
    fn it_exposes_what_prometheus_clients_histogram_exposes() {
        let ours = ShardedHistogram::new(BOUNDS);
        let theirs = Histogram::new(BOUNDS);
        let micros = [
            0, 1, 100, 101, 999, 1000, 1001, 250_000, 500_000, 2_000_000, 7_000_000,
        ];
        for (i, us) in micros.iter().enumerate() {
            for _ in 0..=i {
                ours.observe(Duration::from_micros(*us));
                theirs.observe(*us as f64 / 1e6);
            }
        }
        let (ours, theirs) = (exposition(ours), exposition(theirs));
        assert!(ours.contains("latency_bucket{le=\"+Inf\"} 66\n"), "{ours}");
        assert_eq!(ours, theirs);
    }

    /// Threads record into different shards and a scrape adds them all up, however many
    /// threads there are against shards.
    #[test]
    fn observations_from_many_threads_all_count() {
        let histogram = ShardedHistogram::new(BOUNDS);
        let threads = SHARDS * 2 + 1;
        std::thread::scope(|scope| {
            for t in 0..threads {
                let histogram = &histogram;
                scope.spawn(move || {
                    for _ in 0..1000 {
                        histogram.observe(Duration::from_micros(50 + t as u64 * 1000));
                    }
                });
            }
        });
        let (sum, count, buckets) = histogram.snapshot();
        assert_eq!(count, threads as u64 * 1000);
        // t = 0 falls in the first bucket, t = 1..=17 in (1 ms, 0.5 s].
        assert_eq!(buckets[0].1, 1000);
        assert_eq!(buckets[2].1, (threads as u64 - 1) * 1000);
        let expected: u64 = (0..threads as u64).map(|t| (50 + t * 1000) * 1000).sum();
        assert!((sum - expected as f64 / 1e6).abs() < 1e-9, "{sum}");
        let used: std::collections::HashSet<usize> = (0..SHARDS)
            .filter(|i| {
                let s = &histogram.inner.shards[*i];
                s.buckets.iter().any(|n| n.load(Ordering::Relaxed) > 0)
            })
            .collect();
        assert!(used.len() > 1, "the threads wrote more than one shard");
    }
}
