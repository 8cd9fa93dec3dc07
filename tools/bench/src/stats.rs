//! Small statistics helpers: medians, nearest-rank percentiles and Lambda's
//! billed durations.

use std::time::Duration;

/// `values` sorted, `None` for no data.
fn sorted(values: &[f64]) -> Option<Vec<f64>> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then_some(v)
}

/// The `p`-th percentile (0–100) by nearest rank; 0 for no data.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    sorted(values).map_or(0.0, |v| {
        v[(((p / 100.0) * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
    })
}

/// The median (mean of the middle two for an even count); 0 for no data.
pub fn median(values: &[f64]) -> f64 {
    sorted(values).map_or(0.0, |v| (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2.0)
}

/// Billed duration: Lambda rounds each invocation up to the next 1 ms.
pub fn billed_ms(duration_ms: f64) -> f64 {
    duration_ms.max(0.0).ceil().max(1.0)
}

/// The mean billed duration of `samples_ms`; 0 for no data.
pub fn mean_billed(samples_ms: &[f64]) -> f64 {
    samples_ms.iter().map(|&d| billed_ms(d)).sum::<f64>() / samples_ms.len().max(1) as f64
}

/// Busy and total jiffies of the whole machine so far (/proc/stat).
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// Share of the machine's CPU time that was busy between two readings.
pub fn busy_share(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (before?, after?);
    (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn mib(kib: Option<u64>) -> Option<f64> {
    kib.map(|k| k as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
