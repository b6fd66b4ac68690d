//! Criterion microbenchmarks: the hashes (`hamtdb_core::hash`), and node decoding and
//! encoding through the public map API, since the node codec itself is crate-private:
//! a lookup in a small in-memory map is node decoding plus one hash per key; a put and
//! its commit re-encode and checksum the nodes on the key's path; `bulk_load` encodes
//! every node once.
//!
//! `cargo bench -p hamtdb-bench --bench micro`

use core::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hamtdb_bench::data::Rng;
use hamtdb_core::hash::{murmur3_x64_128, murmur3_x86_32};
use hamtdb_core::{Durability, Map, MapOptions, VecRegion};

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

fn hashing(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let mut group = c.benchmark_group("hash");
    // 24: a key (the map's path hash); 174: a pair's entry; 4096: a large node.
    for len in [24usize, 174, 4096] {
        let input = random_bytes(&mut rng, len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("murmur3_x64_128", len), &input, |b, i| {
            b.iter(|| murmur3_x64_128(black_box(i), 7))
        });
        group.bench_with_input(BenchmarkId::new("murmur3_x86_32", len), &input, |b, i| {
            b.iter(|| murmur3_x86_32(black_box(i), 7))
        });
    }
    group.finish();
}

const KEYS: usize = 10_000;

fn pairs(rng: &mut Rng) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..KEYS)
        .map(|_| (random_bytes(rng, 24), random_bytes(rng, 150)))
        .collect()
}

fn loaded_map(pairs: &[(Vec<u8>, Vec<u8>)], capacity: usize) -> Map<VecRegion> {
    let map = Map::create(VecRegion::with_capacity(capacity), MapOptions::default())
        .expect("an in-memory map");
    map.bulk_load(pairs.iter().map(|(k, v)| (k, v)))
        .expect("bulk load");
    map
}

fn nodes(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let pairs = pairs(&mut rng);
    let map = loaded_map(&pairs, 64 << 20);
    let mut group = c.benchmark_group("node");

    group.bench_function("decode: get, 10k-key map", |b| {
        let snapshot = map.begin_read();
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(snapshot.get(&pairs[i].0).expect("get"))
        })
    });

    // `Immediate`: a VecRegion's sync costs nothing, and synced commits let the space
    // of replaced nodes be reused, so the map does not grow without end.
    group.bench_function("encode: put + commit, 10k-key map", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let mut txn = map.begin_write();
            txn.put(&pairs[i].0, &pairs[(i + 1) % KEYS].1).expect("put");
            txn.commit_with(Durability::Immediate).expect("commit");
        })
    });

    group.throughput(Throughput::Elements(1000));
    group.bench_function("encode: bulk_load of 1,000 pairs", |b| {
        b.iter(|| loaded_map(&pairs[..1000], 1 << 20))
    });
    group.finish();
}

criterion_group!(benches, hashing, nodes);
criterion_main!(benches);
