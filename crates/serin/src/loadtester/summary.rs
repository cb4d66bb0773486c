//! hey's report layout (hey 0.1.4 as shipped by Debian), filled from a [`Report`].
//!
//! Differences, all deliberate: the `DNS+dialup` line shows the fastest and slowest connection
//! set-up (hey prints the fastest/slowest *response* there); a percentile that hey leaves out for
//! small samples (it prints `0% in 0.0000 secs`) is shown with the slowest sample; phases that
//! were not measured print `n/a` instead of numbers.

use std::fmt::Write;

use crate::loadtester::loadgen::{PhaseStats, Report, phase};

const BAR: &str = "■";
const PERCENTILES: [usize; 7] = [10, 25, 50, 75, 90, 95, 99];

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// The percentile latencies (seconds) hey shows, by hey's index rule.
pub fn percentiles(sorted: &[u64]) -> Vec<(usize, f64)> {
    if sorted.is_empty() {
        return Vec::new();
    }
    let n = sorted.len();
    PERCENTILES
        .iter()
        .map(|&p| {
            // hey: the first i with floor(i*100/n) >= p.
            let i = (p * n).div_ceil(100).min(n - 1);
            (p, secs(sorted[i]))
        })
        .collect()
}

/// Histogram marks (seconds) and counts, hey's 11 buckets from fastest to slowest.
pub fn histogram(sorted: &[u64]) -> Vec<(f64, u64)> {
    let (Some(&fastest), Some(&slowest)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let (fastest, slowest) = (secs(fastest), secs(slowest));
    let bc = 10;
    let bs = (slowest - fastest) / bc as f64;
    let mut marks: Vec<f64> = (0..bc).map(|i| fastest + bs * i as f64).collect();
    marks.push(slowest);
    let mut counts = vec![0u64; bc + 1];
    let mut bi = 0;
    for &lat in sorted {
        let lat = secs(lat);
        while lat > marks[bi] && bi < bc {
            bi += 1;
        }
        counts[bi] += 1;
    }
    marks.into_iter().zip(counts).collect()
}

fn detail_line(out: &mut String, tag: &str, stats: Option<&PhaseStats>, responses: u64) {
    match stats {
        Some(s) if responses > 0 => {
            let avg = s.sum_ns as f64 / responses as f64 / 1e9;
            let _ = write!(
                out,
                "\n  {tag}:\t{avg:4.4} secs, {:4.4} secs, {:4.4} secs",
                secs(s.min_ns),
                secs(s.max_ns)
            );
        }
        Some(_) => {
            let _ = write!(out, "\n  {tag}:\t NaN secs, 0.0000 secs, 0.0000 secs");
        }
        None => {
            let _ = write!(
                out,
                "\n  {tag}:\t n/a (not measured for https, proxied or HTTP/2 requests)"
            );
        }
    }
}

/// Renders the summary exactly in hey's layout.
pub fn format_summary(r: &Report) -> String {
    let mut out = String::new();
    let average = if r.responses == 0 {
        f64::NAN
    } else {
        r.average_secs()
    };
    out.push_str("\nSummary:\n");
    let _ = writeln!(out, "  Total:\t{:4.4} secs", r.total.as_secs_f64());
    let _ = writeln!(out, "  Slowest:\t{:4.4} secs", secs(r.slowest_ns));
    let _ = writeln!(out, "  Fastest:\t{:4.4} secs", secs(r.fastest_ns));
    let _ = writeln!(out, "  Average:\t{average:4.4} secs");
    let _ = writeln!(out, "  Requests/sec:\t{:4.4}", r.requests_per_sec());
    out.push_str("  \n");
    if r.size_total > 0 {
        let _ = writeln!(out, "  Total data:\t{} bytes", r.size_total);
        let _ = writeln!(
            out,
            "  Size/request:\t{} bytes",
            r.size_total / r.responses.max(1)
        );
    }
    if (r.samples.len() as u64) < r.responses {
        let _ = writeln!(
            out,
            "  Note:\tdistributions are for {} of {} responses",
            r.samples.len(),
            r.responses
        );
    }
    out.push_str("\nResponse time histogram:\n");
    let hist = histogram(&r.samples);
    let max = hist.iter().map(|(_, c)| *c).max().unwrap_or(0);
    for (mark, count) in &hist {
        let bar = (count * 40 + max / 2).checked_div(max).unwrap_or(0);
        let _ = writeln!(out, "  {mark:4.3} [{count}]\t|{}", BAR.repeat(bar as usize));
    }
    out.push_str("\n\nLatency distribution:");
    for (p, lat) in percentiles(&r.samples) {
        let _ = write!(out, "\n  {p}% in {lat:4.4} secs");
    }
    out.push_str("\n\nDetails (average, fastest, slowest):");
    let phases = r.phases.as_ref();
    detail_line(
        &mut out,
        "DNS+dialup",
        phases.map(|p| &p[phase::DIALUP]),
        r.responses,
    );
    detail_line(
        &mut out,
        "DNS-lookup",
        phases.map(|p| &p[phase::DNS]),
        r.responses,
    );
    detail_line(
        &mut out,
        "req write",
        phases.map(|p| &p[phase::REQ_WRITE]),
        r.responses,
    );
    detail_line(
        &mut out,
        "resp wait",
        phases.map(|p| &p[phase::RESP_WAIT]),
        r.responses,
    );
    detail_line(
        &mut out,
        "resp read",
        phases.map(|p| &p[phase::RESP_READ]),
        r.responses,
    );
    out.push_str("\n\nStatus code distribution:");
    for (code, n) in &r.status_codes {
        let _ = write!(out, "\n  [{code}]\t{n} responses");
    }
    out.push_str("\n\n");
    if !r.errors.is_empty() {
        out.push_str("Error distribution:");
        for (err, n) in &r.errors {
            let _ = write!(out, "\n  [{n}]\t{err}");
        }
    }
    out.push_str("\n\n");
    out
}

/// hey's `-o csv` output: one line per response.
pub fn format_csv(r: &Report) -> String {
    let mut out =
        String::from("response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read\n");
    for row in &r.csv_rows {
        let _ = writeln!(
            out,
            "{:4.4},{:4.4},{:4.4},{:4.4},{:4.4},{:4.4}",
            secs(row[0]),
            secs(row[1]),
            secs(row[2]),
            secs(row[3]),
            secs(row[4]),
            secs(row[5])
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn report() -> Report {
        let samples: Vec<u64> = (1..=20).map(|i| i * 1_000_000).collect();
        let mut phases = [PhaseStats::default(); 5];
        for (i, p) in phases.iter_mut().enumerate() {
            *p = PhaseStats {
                sum_ns: 20 * (i as u128 + 1) * 100_000,
                min_ns: 0,
                max_ns: 1_000_000,
            };
        }
        Report {
            total: Duration::from_millis(500),
            responses: 20,
            error_count: 2,
            latency_sum_ns: samples.iter().map(|s| u128::from(*s)).sum(),
            fastest_ns: 1_000_000,
            slowest_ns: 20_000_000,
            samples,
            phases: Some(phases),
            status_codes: BTreeMap::from([(200, 18), (503, 2)]),
            errors: BTreeMap::from([("Get \"http://x/\": boom".to_owned(), 2)]),
            size_total: 2000,
            csv_rows: vec![[1_000_000, 0, 0, 100_000, 800_000, 100_000]],
        }
    }

    #[test]
    fn summary_has_heys_layout() {
        let text = format_summary(&report());
        let expected_start = "\nSummary:\n  Total:\t0.5000 secs\n  Slowest:\t0.0200 secs\n  Fastest:\t0.0010 secs\n  \
            Average:\t0.0105 secs\n  Requests/sec:\t44.0000\n  \n  Total data:\t2000 bytes\n  Size/request:\t100 bytes\n\n\
            Response time histogram:\n  0.001 [1]\t|";
        assert!(text.starts_with(expected_start), "{text}");
        assert!(text.contains("\n\n\nLatency distribution:\n  10% in 0.0030 secs\n  25% in 0.0060 secs\n  50% in 0.0110 secs"), "{text}");
        assert!(text.contains("\n  99% in 0.0200 secs\n\nDetails (average, fastest, slowest):\n  DNS+dialup:\t0.0001 secs, 0.0000 secs, 0.0010 secs\n"), "{text}");
        assert!(text.contains("  resp read:\t0.0005 secs, 0.0000 secs, 0.0010 secs\n\nStatus code distribution:\n  [200]\t18 responses\n  [503]\t2 responses\n\n"), "{text}");
        assert!(
            text.ends_with("Error distribution:\n  [2]\tGet \"http://x/\": boom\n\n"),
            "{text:?}"
        );
    }

    #[test]
    fn histogram_buckets_cover_every_sample() {
        let r = report();
        let hist = histogram(&r.samples);
        assert_eq!(hist.len(), 11);
        assert_eq!(hist.iter().map(|(_, c)| c).sum::<u64>(), 20);
        assert!((hist[0].0 - 0.001).abs() < 1e-9 && (hist[10].0 - 0.020).abs() < 1e-9);
        let text = format_summary(&r);
        let longest = text
            .lines()
            .filter(|l| l.contains('|'))
            .map(|l| l.matches(BAR).count())
            .max();
        assert_eq!(longest, Some(40));
    }

    #[test]
    fn unmeasured_phases_say_so() {
        let mut r = report();
        r.phases = None;
        assert!(format_summary(&r).contains("  DNS-lookup:\t n/a (not measured"));
    }

    #[test]
    fn csv_rows() {
        assert_eq!(
            format_csv(&report()),
            "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read\n0.0010,0.0000,0.0000,0.0001,0.0008,0.0001\n"
        );
    }
}
