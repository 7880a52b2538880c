//! `cargo xtask bench replicas`: receipts through three server replicas on one PostgreSQL
//! database against one replica on the same kind of database (issue 19), from the ignored
//! `replicated_receipts_bench` test of `server/tests/replicas.rs`.

use super::{bench_test, load_average, num};

pub fn section(_runs: usize) -> Result<String, String> {
    let v = bench_test(
        "custody-server",
        "replicas",
        "replicated_receipts_bench",
        "REPLICAS_BENCH_JSON",
    )?;
    let row = |name: &str, p: &serde_json::Value| {
        format!(
            "| {name} | {:.0} | {:.0} | {:.1} s | {:.0} /s | {:.0} ms | {:.0} ms | {:.1} ms | {:.0} |\n",
            num(p, "devices"),
            num(p, "receipts"),
            num(p, "secs"),
            num(p, "receipts_per_s"),
            num(p, "p50_ms"),
            num(p, "p99_ms"),
            num(p, "cpu_ms_per_receipt"),
            num(p, "log_size"),
        )
    };
    let (one, three) = (&v["one"], &v["three"]);
    Ok(format!(
        "Command: `cargo xtask bench replicas` (runs `cargo test --release -p custody-server --test \
         replicas -- --ignored replicated_receipts_bench`; `CUSTODY_REPLICAS_DEVICES` and \
         `CUSTODY_REPLICAS_SEGMENTS` size it). One pass with one server, one with three replicas, each \
         on a fresh database of the test PostgreSQL cluster (`custody_testkit::pg`, on this machine), \
         records and segments in one shared directory. The replicas run in one process, each on its \
         own loopback port (plain HTTP); every device enrolls and uploads its chain of 20 KB segments \
         one request after another, device i to replica i mod n, so the replicas append to the one log \
         at once. CPU is this process's (servers and devices), not PostgreSQL's. On one 2-core machine \
         three replicas cannot add cores: the ratio shows what sharing the log between writers costs \
         (each batch catches up with the others' entries in its transaction), not the gain of more \
         machines.\n\n\
         | set-up | devices | receipts | duration | receipts/s | p50 | p99 | CPU per receipt | log size seen by replica 1 |\n\
         |---|---|---|---|---|---|---|---|---|\n{}{}\n\
         Three replicas ÷ one: receipts/s **{:.2}x**, p99 **{:.2}x**. Load average (1 min) at the end: {}.\n",
        row("1 replica", one),
        row("3 replicas, one database", three),
        num(three, "receipts_per_s") / num(one, "receipts_per_s"),
        num(three, "p99_ms") / num(one, "p99_ms"),
        load_average(),
    ))
}
