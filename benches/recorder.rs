//! The recorder's hot path: one `record` per logical request.
use std::hint::black_box;
use std::time::Duration;

use chaos::metrics::{Outcome, Recorder, Sample};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("recorder");
    g.throughput(Throughput::Elements(1));
    let mut rec = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
    let mut i = 0u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            i += 1;
            // 10k req/s of intended times, latencies spread over 1 ms .. 1 s.
            let s = Sample {
                request: (i & 1) as u16,
                intended: Duration::from_micros(i * 100 % 60_000_000),
                latency_us: 1_000 + (i * 7919) % 1_000_000,
                service_us: 900 + (i * 104_729) % 900_000,
                lateness_us: i % 300,
                outcome: if i % 50 == 0 {
                    Outcome::Http5xx
                } else {
                    Outcome::Ok
                },
                status: if i % 50 == 0 { 503 } else { 200 },
                attempts: 1 + (i % 50 == 0) as u8,
                exhausted: false,
            };
            rec.record(black_box(&s));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
