//! What a run produces: the markdown table (ms, ops/s, and each figure's ratio to
//! LMDB's), the targets checked against the figures, the JSON records, and an
//! SVG chart of the ratios (hand-written: a few rectangles need no plotting library).

use core::fmt::Write as _;

use crate::{Record, Store, Workload};

/// LMDB's figure that `r` is compared with: the same workload, except `get_many`
/// (against LMDB's single gets, as the target reads) and `bulk_load_fn`
/// (against LMDB's bulk load).
fn baseline<'a>(records: &'a [Record], r: &Record) -> Option<&'a Record> {
    let workload = match r.workload {
        Workload::GetMany => Workload::GetRandom,
        Workload::BulkLoadFn => Workload::BulkLoad,
        Workload::UsedAfterLoad => Workload::SizeAfterLoad,
        w => w,
    };
    find(records, "lmdb", workload)
}

fn find<'a>(records: &'a [Record], store: &str, workload: Workload) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.store == store && r.workload == workload)
}

/// `r`'s figure over LMDB's: ops/s over ops/s for rates (higher is better), bytes over
/// bytes for sizes (lower is better).
pub fn ratio_to_lmdb(records: &[Record], r: &Record) -> Option<f64> {
    let base = baseline(records, r)?;
    if r.workload.is_size() {
        Some(r.bytes? as f64 / base.bytes? as f64)
    } else {
        Some(r.ops_per_s? / base.ops_per_s?)
    }
}

fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown table: one row per (workload, store), in the order.
pub fn markdown_table(records: &[Record]) -> String {
    let mut out = String::from(
        "| workload | store | ms | ops/s | bytes | × LMDB |\n|---|---|---:|---:|---:|---:|\n",
    );
    for r in records {
        let ms = r.ms.map_or(String::new(), |ms| format!("{ms:.1}"));
        let ops = r.ops_per_s.map_or(String::new(), thousands);
        let bytes = r.bytes.map_or(String::new(), |b| thousands(b as f64));
        let ratio = ratio_to_lmdb(records, r).map_or(String::new(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {ms} | {ops} | {bytes} | {ratio} |",
            r.workload.name(),
            r.store
        );
    }
    out
}

/// One of the targets, measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// What the issue asks.
    pub what: &'static str,
    /// The measured ratio.
    pub measured: f64,
    /// The bound it must reach.
    pub bound: f64,
    /// Whether the measured ratio must be at most (true) or at least (false) the bound.
    pub at_most: bool,
}

impl Target {
    /// Whether the target is met.
    pub fn met(&self) -> bool {
        if self.at_most {
            self.measured <= self.bound
        } else {
            self.measured >= self.bound
        }
    }
}

/// The targets, from the figures (those whose figures are missing are left out).
/// `logical_bytes` is the keys' and values' bytes at load.
pub fn targets(records: &[Record], logical_bytes: u64) -> Vec<Target> {
    let get = |store: &str, w: Workload| find(records, store, w);
    let ops = |store: &str, w: Workload| get(store, w).and_then(|r| r.ops_per_s);
    let ms = |store: &str, w: Workload| get(store, w).and_then(|r| r.ms);
    let bytes = |store: &str, w: Workload| get(store, w).and_then(|r| r.bytes);
    let mut out = Vec::new();
    let mut push = |what, measured: Option<f64>, bound, at_most| {
        if let Some(measured) = measured {
            out.push(Target {
                what,
                measured,
                bound,
                at_most,
            });
        }
    };
    let over = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    push(
        "random get: hamtdb ops/s over LMDB's",
        over(
            ops("hamtdb", Workload::GetRandom),
            ops("lmdb", Workload::GetRandom),
        ),
        4.0,
        false,
    );
    push(
        "random get: hamtdb time over hashbrown's",
        over(
            ms("hamtdb", Workload::GetRandom),
            ms("hashbrown", Workload::GetRandom),
        ),
        3.5,
        true,
    );
    push(
        "get_many: hamtdb ops/s over LMDB's single gets",
        over(
            ops("hamtdb", Workload::GetMany),
            ops("lmdb", Workload::GetRandom),
        ),
        10.0,
        false,
    );
    push(
        "bulk load (one transaction of puts): hamtdb ops/s over LMDB's",
        over(
            ops("hamtdb", Workload::BulkLoad),
            ops("lmdb", Workload::BulkLoad),
        ),
        3.0,
        false,
    );
    let best_peer = ["lmdb", "redb", "fjall"]
        .into_iter()
        .filter_map(|s| ops(s, Workload::CommitSingleDurable))
        .reduce(f64::max);
    push(
        "durable single-put commit: hamtdb ops/s over the best peer's",
        over(ops("hamtdb", Workload::CommitSingleDurable), best_peer),
        1.0,
        false,
    );
    push(
        "file size after load over the logical bytes",
        bytes("hamtdb", Workload::SizeAfterLoad).map(|b| b as f64 / logical_bytes as f64),
        1.3,
        true,
    );
    push(
        "size after removing half and compacting over the size after load",
        over(
            bytes("hamtdb", Workload::SizeAfterCompact).map(|b| b as f64),
            bytes("hamtdb", Workload::SizeAfterLoad).map(|b| b as f64),
        ),
        0.6,
        true,
    );
    push(
        "2-thread random get over 1-thread",
        over(
            ops("hamtdb", Workload::GetRandom2t),
            ops("hamtdb", Workload::GetRandom),
        ),
        1.8,
        false,
    );
    out
}

/// The targets as a markdown list.
pub fn markdown_targets(targets: &[Target]) -> String {
    let mut out = String::new();
    for t in targets {
        let _ = writeln!(
            out,
            "- {}: **{:.2}** (target {} {}) — {}",
            t.what,
            t.measured,
            if t.at_most { "≤" } else { "≥" },
            t.bound,
            if t.met() { "met" } else { "**missed**" }
        );
    }
    out
}

fn json_number(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".into(),
    }
}

/// The records as a JSON array, one object per line:
/// `{"store": "...", "workload": "...", "ms": ..., "ops_per_s": ..., "bytes": ...}`
/// (`null` where a figure does not apply: `ms` and `ops_per_s` of sizes, `bytes` of
/// rates).
pub fn json(records: &[Record]) -> String {
    let mut out = String::from("[\n");
    for (i, r) in records.iter().enumerate() {
        let _ = write!(
            out,
            "  {{\"store\": \"{}\", \"workload\": \"{}\", \"ms\": {}, \"ops_per_s\": {}, \"bytes\": {}}}",
            r.store,
            r.workload.name(),
            json_number(r.ms),
            json_number(r.ops_per_s),
            r.bytes.map_or("null".into(), |b| b.to_string()),
        );
        out += if i + 1 < records.len() { ",\n" } else { "\n" };
    }
    out += "]\n";
    out
}

fn color(store: &str) -> &'static str {
    match Store::from_name(store) {
        Some(Store::Hamtdb) => "#d62728",
        Some(Store::Lmdb) => "#7f7f7f",
        Some(Store::Redb) => "#1f77b4",
        Some(Store::Fjall) => "#2ca02c",
        Some(Store::Hashbrown) => "#ff7f0e",
        Some(Store::Fdatasync) => "#9467bd",
        None => "#000000",
    }
}

/// A horizontal bar chart of every figure's ratio to LMDB's, on a log scale from 0.01
/// to 100 (bars beyond are clipped and labelled with their value). `title` heads it.
pub fn svg(records: &[Record], title: &str) -> String {
    const LEFT: f64 = 230.0;
    const PLOT: f64 = 560.0;
    const BAR: f64 = 11.0;
    const GAP: f64 = 10.0;
    const TOP: f64 = 70.0;
    let (lo, hi) = (-2.0f64, 2.0f64);
    let x_of = |ratio: f64| LEFT + (ratio.log10().clamp(lo, hi) - lo) / (hi - lo) * PLOT;

    let mut groups: Vec<(Workload, Vec<(&str, f64)>)> = Vec::new();
    for r in records {
        let Some(ratio) = ratio_to_lmdb(records, r) else {
            continue;
        };
        match groups.last_mut() {
            Some((w, bars)) if *w == r.workload => bars.push((r.store, ratio)),
            _ => groups.push((r.workload, vec![(r.store, ratio)])),
        }
    }
    let height: f64 = TOP
        + groups
            .iter()
            .map(|(_, bars)| bars.len() as f64 * BAR + GAP)
            .sum::<f64>()
        + 40.0;
    let width = LEFT + PLOT + 80.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width} {height:.0}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    let _ = writeln!(
        s,
        "<text x=\"10\" y=\"34\">Ratio to LMDB, log scale: ops/s (right of 1 is faster); \
         size rows: bytes (left of 1 is smaller). get_many is against LMDB's get_random.</text>"
    );
    // Legend.
    let mut lx = 10.0;
    for store in Store::ALL {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"44\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"53\">{}</text>",
            color(store.name()),
            lx + 14.0,
            store.name()
        );
        lx += 90.0;
    }
    // Grid.
    let bottom = height - 30.0;
    for p in [-2i32, -1, 0, 1, 2] {
        let x = x_of(10f64.powi(p));
        let stroke = if p == 0 { "#000" } else { "#ccc" };
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{TOP}\" x2=\"{x:.1}\" y2=\"{bottom:.0}\" stroke=\"{stroke}\"/>\
             <text x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text>",
            bottom + 14.0,
            10f64.powi(p)
        );
    }
    let mut y = TOP;
    for (workload, bars) in &groups {
        let mid = y + bars.len() as f64 * BAR / 2.0 + 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.0}\" y=\"{mid:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 8.0,
            workload.name()
        );
        for (store, ratio) in bars {
            let x0 = x_of(1.0);
            let x1 = x_of(*ratio);
            let (x, w) = if x1 >= x0 {
                (x0, x1 - x0)
            } else {
                (x1, x0 - x1)
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{store} {}: {ratio:.3}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\">{}</text>",
                w.max(1.0),
                BAR - 2.0,
                color(store),
                workload.name(),
                if x1 >= x0 { x1 + 3.0 } else { x1 - 30.0 },
                y + BAR - 3.0,
                short(*ratio)
            );
            y += BAR;
        }
        y += GAP;
    }
    s += "</svg>\n";
    s
}

/// Two decimals, or three significant digits below 0.1 (so that 0.002 does not read 0.00).
fn short(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.1e}")
    } else {
        format!("{x:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
