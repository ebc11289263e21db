//! Matching one image's faces against 10k, 100k and 1M stored faces (one core).
//! `cargo bench --bench matching`; figures go to docs/PERFORMANCE.md.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use facerec::face::{ENCODING_DIMS, Encoding};
use facerec::hash::ImageHash;
use facerec::matching::FaceSet;
use std::hint::black_box;

/// Encodings spread like real ones (components ~N(0, 0.09)), f32-exact as dlib's are.
fn encodings(n: usize, seed: u64) -> Vec<Encoding> {
    let mut x = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            Encoding(std::array::from_fn(|_| {
                // Sum of 4 uniforms: close enough to a normal for memory-bound timing.
                let v = (next() + next() + next() + next() - 2.0) * 0.155;
                f64::from(v as f32)
            }))
        })
        .collect()
}

fn filled(n: usize) -> FaceSet {
    let mut set = FaceSet::with_capacity(n);
    for (i, e) in encodings(n, 7).into_iter().enumerate() {
        set.insert(&ImageHash::of_bytes(&i.to_le_bytes()), &[e]);
    }
    set
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    group.sample_size(20);
    for n in [10_000usize, 100_000, 1_000_000] {
        let set = filled(n);
        group.throughput(Throughput::Elements(n as u64));
        for faces in [1usize, 3] {
            let queries = encodings(faces, 99);
            group.bench_with_input(BenchmarkId::new(format!("{faces}_face"), n), &queries, |b, q| {
                b.iter(|| black_box(set.matches(black_box(q), 0.6, None)))
            });
        }
    }
    group.finish();
    let _ = ENCODING_DIMS;
}

criterion_group!(benches, matching);
criterion_main!(benches);
