//! Pieces the benchmarks share: results go into marked sections of docs/benchmarks.md, and the
//! process may need more file descriptors than the default soft limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::repo_root;

/// The median and 99th percentile of a set of latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quantiles {
    pub p50: Duration,
    pub p99: Duration,
}

/// [`Quantiles`] of `samples` (sorted in place; nearest rank; zero when empty).
pub fn quantiles(samples: &mut [Duration]) -> Quantiles {
    samples.sort();
    if samples.is_empty() {
        return Quantiles::default();
    }
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Quantiles {
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Latency quantiles and throughput of a run of operations.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
    pub per_sec: f64,
}

/// [`Stats`] of `samples` taken over `wall`.
pub fn stats(mut samples: Vec<Duration>, wall: Duration) -> Stats {
    let q = quantiles(&mut samples);
    Stats {
        p50: q.p50,
        p99: q.p99,
        per_sec: samples.len() as f64 / wall.as_secs_f64(),
    }
}

/// Run `total` operations split over `clients` tasks; each call gets its global index.
pub async fn drive<F, Fut>(clients: usize, total: usize, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let samples = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            let samples = samples.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in (c..total).step_by(clients) {
                    let t = Instant::now();
                    op(i).await;
                    mine.push(t.elapsed());
                }
                samples.lock().await.extend(mine);
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("benchmark task");
    }
    let wall = started.elapsed();
    let samples = Arc::try_unwrap(samples).expect("tasks done").into_inner();
    stats(samples, wall)
}

/// Milliseconds with two decimals, as the tables in docs/benchmarks.md show them.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Replace the `<!-- NAME-bench:start -->` … `<!-- NAME-bench:end -->` section of
/// docs/benchmarks.md with `section` (which carries those markers), or append it.
pub fn write_section(name: &str, section: &str) -> anyhow::Result<()> {
    let path = repo_root().join("docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    std::fs::write(path, replace_section(&doc, name, section))?;
    Ok(())
}

fn replace_section(doc: &str, name: &str, section: &str) -> String {
    let (start, end) = (
        format!("<!-- {name}-bench:start -->"),
        format!("<!-- {name}-bench:end -->"),
    );
    match (doc.find(&start), doc.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            let mut stop = b + end.len();
            if doc[stop..].starts_with('\n') {
                stop += 1;
            }
            format!("{}{}{}", &doc[..a], section, &doc[stop..])
        }
        _ => format!("{}\n\n{}", doc.trim_end(), section),
    }
}

/// Raise the soft open-file limit to the hard limit: a benchmark holds both ends of thousands
/// of connections (clients and the in-process apiserver) in one process.
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on our own process with a valid struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let q = quantiles(&mut samples);
        assert_eq!(q.p50, Duration::from_millis(51));
        assert_eq!(q.p99, Duration::from_millis(99));
        assert_eq!(quantiles(&mut []), Quantiles::default());
        assert_eq!(ms(Duration::from_micros(1500)), "1.50");
    }

    #[test]
    fn sections_are_replaced_in_place_or_appended() {
        let doc = "# B\n\n<!-- a-bench:start -->\nold\n<!-- a-bench:end -->\n\ntail\n";
        let new = "<!-- a-bench:start -->\nnew\n<!-- a-bench:end -->\n";
        assert_eq!(
            replace_section(doc, "a", new),
            "# B\n\n<!-- a-bench:start -->\nnew\n<!-- a-bench:end -->\n\ntail\n"
        );
        let other = "<!-- b-bench:start -->\nb\n<!-- b-bench:end -->\n";
        assert_eq!(
            replace_section("# B\n", "b", other),
            format!("# B\n\n{other}")
        );
    }
}
