//! The recorder's hot path: one `record` per logical request, and the whole path a sample takes
//! through a `SampleSink` into the recorder task (channel, batch drain, recording, finish).
#![allow(clippy::unwrap_used)]
use std::hint::black_box;
use std::time::Duration;

use chaos::clock::Clock;
use chaos::metrics::recorder::{self, Options};
use chaos::metrics::{Outcome, Recorder, Sample};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The i-th sample of a 10k req/s run, latencies spread over 1 ms .. 1 s.
fn sample(i: u64) -> Sample {
    Sample {
        request: (i & 1) as u16,
        intended: Duration::from_micros(i * 100 % 60_000_000),
        latency_us: 1_000 + (i * 7919) % 1_000_000,
        service_us: 900 + (i * 104_729) % 900_000,
        lateness_us: i % 300,
        outcome: if i.is_multiple_of(50) {
            Outcome::Http5xx
        } else {
            Outcome::Ok
        },
        status: if i.is_multiple_of(50) { 503 } else { 200 },
        attempts: 1 + (i.is_multiple_of(50)) as u8,
        exhausted: false,
        // Two versions, as a cutover records them (`responses_by`).
        tag: 1 + (i & 1) as u8,
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("recorder");
    g.throughput(Throughput::Elements(1));
    let mut rec = Recorder::new(vec!["a".into(), "b".into()], Duration::from_secs(1));
    let mut i = 0u64;
    g.bench_function("record", |b| {
        b.iter(|| {
            i += 1;
            rec.record(black_box(&sample(i)));
        })
    });

    // 200k samples sent from another thread, drained and recorded by the task, then finished
    // (every interval compressed): the recorder's throughput end to end.
    const N: u64 = 200_000;
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    g.bench_function("sink_200k_to_recording", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (sink, h) = recorder::spawn(
                    vec!["a".into(), "b".into()],
                    Duration::from_secs(1),
                    Clock::start(),
                    Options {
                        tick: Duration::from_millis(100),
                        settle: Duration::from_secs(10),
                    },
                );
                std::thread::spawn(move || {
                    for i in 0..N {
                        sink.send(sample(i));
                    }
                });
                black_box(h.finish().await)
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
