//! Simulator throughput: a whole small run (build + workload), and events per second.
//!
//! ```text
//! cargo bench -p xorro-sim --bench events
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use xorro_sim::Scenario;

fn scenario() -> Scenario {
    Scenario::from_toml(
        "nodes = 500\n[link]\nloss = 0.01\n[build]\nsettle_s = 10\n\
         [workload]\nlookups = 100\nannounces = 10\nputs = 5\nduration_s = 30\n",
    )
    .expect("a valid scenario")
}

fn bench(c: &mut Criterion) {
    let s = scenario();
    let (report, info) = xorro_sim::run_measured(&s, &mut |_| {});
    eprintln!(
        "500 nodes: {} events, {:.0} events/s, {:.0} bytes/node",
        report.network.events, info.events_per_s, info.bytes_per_node
    );
    let mut g = c.benchmark_group("simulator");
    g.sample_size(10);
    g.bench_function("run_500_nodes", |b| b.iter(|| xorro_sim::run(&s)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
