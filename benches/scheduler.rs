//! The arrival schedule: cost of computing each intended send time.
use std::hint::black_box;
use std::time::Duration;

use chaos::load::schedule::Schedule;
use chaos::scenario::{Stage, StageKind};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let stages = vec![
        Stage {
            kind: StageKind::Ramp,
            rps: 10_000.0,
            rate_text: "10000/s".into(),
            duration: Duration::from_secs(10),
        },
        Stage {
            kind: StageKind::Hold,
            rps: 10_000.0,
            rate_text: "10000/s".into(),
            duration: Duration::from_secs(10),
        },
    ];
    let mut g = c.benchmark_group("schedule");
    g.throughput(Throughput::Elements(150_000));
    g.bench_function("150k_offsets_ramp_then_hold", |b| {
        b.iter(|| black_box(Schedule::new(black_box(&stages)).count()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
