#![forbid(unsafe_code)]
//! Measures the canary-versus-primary judgement of `crates/serin/src/stats` on simulated data:
//! false alarms on identical versions, power against a 10 % latency increase and a doubled
//! error rate, and the two failure cases of Kayenta's Mann-Whitney judge (a start-up transient
//! and a variance increase). Deterministic: every scenario draws from a fixed seed.
//!
//! `cargo run --release --manifest-path bench/judge/Cargo.toml [-- RUNS]` (default 1000 runs
//! per cell). Results and their reading: docs/analysis.md.

#[path = "../../../crates/serin/src/stats/mod.rs"]
#[allow(dead_code, unused_imports)]
mod stats;

use stats::{Counts, Outcome, Settings, compare_proportions, compare_samples};

/// SplitMix64: small, fast and good enough for Monte Carlo of this size.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Log-normal latency with the given median and log-scale spread.
    fn latency(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
    fn bernoulli_count(&mut self, n: u64, p: f64) -> f64 {
        (0..n).filter(|_| self.uniform() < p).count() as f64
    }
}

const MEDIAN_MS: f64 = 100.0;
/// Log-scale spread of single request latencies (p99 ≈ 3.2 × median).
const SIGMA: f64 = 0.5;

fn settings(relative: f64, min_samples: usize) -> Settings {
    Settings {
        confidence: 0.95,
        min_samples,
        relative,
        absolute: 0.0,
    }
}

/// Share of runs with each outcome: (fail, inconclusive).
fn rate(runs: usize, seed: u64, mut one: impl FnMut(&mut Rng) -> Outcome) -> (f64, f64) {
    let mut rng = Rng(seed);
    let (mut fail, mut inconclusive) = (0usize, 0usize);
    for _ in 0..runs {
        match one(&mut rng) {
            Outcome::Fail => fail += 1,
            Outcome::Inconclusive => inconclusive += 1,
            Outcome::Pass => {}
        }
    }
    (fail as f64 / runs as f64, inconclusive as f64 / runs as f64)
}

fn pct(v: f64) -> String {
    format!("{:.1} %", v * 100.0)
}

/// Samples of one version: `n` values, each the median of `per_sample` request latencies
/// (`per_sample` = 1: single requests), the first `transient` of them `slow`× slower.
struct Draw {
    n: usize,
    per_sample: usize,
    median: f64,
    sigma: f64,
    transient: usize,
    slow: f64,
    /// Which quantile of the window a sample reports (0.5 = median).
    quantile: f64,
}

impl Draw {
    fn plain(n: usize) -> Self {
        Draw {
            n,
            per_sample: 1,
            median: MEDIAN_MS,
            sigma: SIGMA,
            transient: 0,
            slow: 1.0,
            quantile: 0.5,
        }
    }
    fn sample(&self, rng: &mut Rng) -> Vec<f64> {
        let mut window = Vec::with_capacity(self.per_sample);
        (0..self.n)
            .map(|i| {
                window.clear();
                window.extend((0..self.per_sample).map(|_| rng.latency(self.median, self.sigma)));
                window.sort_by(f64::total_cmp);
                let idx =
                    ((self.per_sample as f64 * self.quantile) as usize).min(self.per_sample - 1);
                let v = window[idx];
                if i < self.transient { v * self.slow } else { v }
            })
            .collect()
    }
}

fn judge(canary: &Draw, primary: &Draw, s: &Settings, rng: &mut Rng) -> Outcome {
    let c = canary.sample(rng);
    let p = primary.sample(rng);
    compare_samples(&c, &p, s).map_or(Outcome::Inconclusive, |j| j.outcome)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let started = std::time::Instant::now();
    println!(
        "runs per cell: {runs}; confidence 0.95 (alpha 0.05); latencies log-normal, median {MEDIAN_MS} ms, sigma {SIGMA}\n"
    );

    // 1. False alarms and power of the rank test on single-request latencies.
    println!("## Latency, rank test on single-request samples (n per version)\n");
    println!(
        "| n | false alarms, same version, allowed 0 % | false alarms, allowed 5 % | power, canary +10 %, allowed 0 % | power, canary +10 %, allowed 5 % | power, canary +25 %, allowed 5 % |"
    );
    println!("|---|---|---|---|---|---|");
    for (k, n) in [10usize, 20, 50, 100, 200, 500, 1000]
        .into_iter()
        .enumerate()
    {
        let seed = 1000 + k as u64;
        let same = Draw::plain(n);
        let slower = |f: f64| Draw {
            median: MEDIAN_MS * f,
            ..Draw::plain(n)
        };
        let fa0 = rate(runs, seed, |r| judge(&same, &same, &settings(0.0, 10), r)).0;
        let fa5 = rate(runs, seed + 1, |r| {
            judge(&same, &same, &settings(0.05, 10), r)
        })
        .0;
        let p10 = rate(runs, seed + 2, |r| {
            judge(&slower(1.1), &same, &settings(0.0, 10), r)
        })
        .0;
        let p10a = rate(runs, seed + 3, |r| {
            judge(&slower(1.1), &same, &settings(0.05, 10), r)
        })
        .0;
        let p25a = rate(runs, seed + 4, |r| {
            judge(&slower(1.25), &same, &settings(0.05, 10), r)
        })
        .0;
        println!(
            "| {n} | {} | {} | {} | {} | {} |",
            pct(fa0),
            pct(fa5),
            pct(p10),
            pct(p10a),
            pct(p25a)
        );
    }

    // 2. Window medians (what a Prometheus range query of a per-window quantile returns).
    println!(
        "\n## Latency, rank test on per-window medians (50 requests per window; n windows per version)\n"
    );
    println!(
        "| n | false alarms, allowed 0 % | power, canary +10 %, allowed 0 % | power, canary +10 %, allowed 5 % |"
    );
    println!("|---|---|---|---|");
    for (k, n) in [5usize, 10, 20, 30, 60].into_iter().enumerate() {
        let seed = 2000 + k as u64 * 10;
        let windows = |f: f64| Draw {
            per_sample: 50,
            median: MEDIAN_MS * f,
            ..Draw::plain(n)
        };
        let fa = rate(runs, seed, |r| {
            judge(&windows(1.0), &windows(1.0), &settings(0.0, 5), r)
        })
        .0;
        let p = rate(runs, seed + 1, |r| {
            judge(&windows(1.1), &windows(1.0), &settings(0.0, 5), r)
        })
        .0;
        let pa = rate(runs, seed + 2, |r| {
            judge(&windows(1.1), &windows(1.0), &settings(0.05, 5), r)
        })
        .0;
        println!("| {n} | {} | {} | {} |", pct(fa), pct(p), pct(pa));
    }

    // 3. Error rates: 1 % against 1 % and against 2 %.
    println!("\n## Error rate, test on two proportions (requests per version)\n");
    println!(
        "| requests | false alarms, 1 % vs 1 %, allowed 0 | power, 2 % vs 1 %, allowed 0 | power, 2 % vs 1 %, allowed +50 % relative |"
    );
    println!("|---|---|---|---|");
    for (k, n) in [250u64, 500, 1000, 2000, 5000, 10000]
        .into_iter()
        .enumerate()
    {
        let seed = 3000 + k as u64 * 10;
        let s = settings(0.0, 100);
        let counts = |r: &mut Rng, p: f64| Counts {
            events: r.bernoulli_count(n, p),
            total: n as f64,
        };
        let run = |cp: f64, s: Settings| {
            move |r: &mut Rng| {
                let c = counts(r, cp);
                let p = counts(r, 0.01);
                compare_proportions(c, p, &s).map_or(Outcome::Inconclusive, |j| j.outcome)
            }
        };
        let fa = rate(runs, seed, run(0.01, s)).0;
        let p = rate(runs, seed + 1, run(0.02, s)).0;
        let pa = rate(runs, seed + 2, run(0.02, settings(0.5, 100))).0;
        println!("| {n} | {} | {} | {} |", pct(fa), pct(p), pct(pa));
    }

    // 4. Kayenta's failures: a start-up transient and a variance increase.
    println!(
        "\n## Start-up transient: the canary's first 10 % of samples are 3× slower, then identical (n = 500 single requests)\n"
    );
    println!("| judge | failed (a false alarm here) |");
    println!("|---|---|");
    let transient = Draw {
        transient: 50,
        slow: 3.0,
        ..Draw::plain(500)
    };
    for (label, s) in [
        (
            "plain rank test (Kayenta-like): allowed 0 %",
            settings(0.0, 10),
        ),
        ("allowed 5 %", settings(0.05, 10)),
        ("allowed 10 %", settings(0.10, 10)),
    ] {
        let f = rate(runs, 4000, |r| judge(&transient, &Draw::plain(500), &s, r)).0;
        println!("| {label} | {} |", pct(f));
    }
    println!(
        "\n## Variance increase: canary sigma 1.0 instead of 0.5, same median (p99 ≈ 3.2× higher)\n"
    );
    println!("| samples | judge | failed (caught) |");
    println!("|---|---|---|");
    let wide = |n: usize, per_sample: usize, quantile: f64| Draw {
        sigma: 1.0,
        per_sample,
        quantile,
        ..Draw::plain(n)
    };
    let narrow = |n: usize, per_sample: usize, quantile: f64| Draw {
        per_sample,
        quantile,
        ..Draw::plain(n)
    };
    let f = rate(runs, 5000, |r| {
        judge(
            &wide(500, 1, 0.5),
            &narrow(500, 1, 0.5),
            &settings(0.0, 10),
            r,
        )
    })
    .0;
    println!(
        "| 500 single requests | rank test, allowed 0 % | {} |",
        pct(f)
    );
    let f = rate(runs, 5001, |r| {
        judge(
            &wide(20, 50, 0.5),
            &narrow(20, 50, 0.5),
            &settings(0.0, 5),
            r,
        )
    })
    .0;
    println!(
        "| 20 window medians (50 requests each) | rank test, allowed 0 % | {} |",
        pct(f)
    );
    let f = rate(runs, 5002, |r| {
        judge(
            &wide(20, 50, 0.9),
            &narrow(20, 50, 0.9),
            &settings(0.10, 5),
            r,
        )
    })
    .0;
    println!(
        "| 20 window p90s (50 requests each) | rank test, allowed 10 % | {} |",
        pct(f)
    );
    let f = rate(runs, 5003, |r| {
        judge(
            &narrow(20, 50, 0.9),
            &narrow(20, 50, 0.9),
            &settings(0.10, 5),
            r,
        )
    })
    .0;
    println!(
        "| 20 window p90s, same version (false alarms) | rank test, allowed 10 % | {} |",
        pct(f)
    );

    // 5. The guard.
    println!("\n## Minimum-sample guard\n");
    let (_, inc) = rate(runs, 6000, |r| {
        judge(&Draw::plain(8), &Draw::plain(50), &settings(0.0, 10), r)
    });
    println!(
        "8 canary samples with minSamples 10: inconclusive in {} of runs.",
        pct(inc)
    );
    println!("\nelapsed: {:.1} s", started.elapsed().as_secs_f64());
}
