//! The driver the crash suites share: their workloads run one thread each, and what each
//! counted is printed a row a workload, aligned, then summed into a summary line.
//!
//! A suite keeps what is its own: the workloads, the crash modes, what a recovered state
//! must be, which [`Counter`]s it keeps and what it asserts of their sum.

use std::thread;

use crate::counters::{Counter, Counters};

/// Runs `run` on each of `workloads`, one scoped thread each (they are independent, and
/// the suite stays fast), and returns each workload's name (`name`) with its result, in
/// the order of `workloads`. A panic in any workload fails the caller.
pub fn one_thread_each<W: Send, T: Send>(
    workloads: Vec<W>,
    name: impl Fn(&W) -> &'static str,
    run: impl Fn(&W) -> T + Sync,
) -> Vec<(&'static str, T)> {
    let run = &run;
    thread::scope(|scope| {
        let handles: Vec<_> = workloads
            .into_iter()
            .map(|workload| {
                let name = name(&workload);
                (name, scope.spawn(move || run(&workload)))
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| (name, h.join().expect("workload thread")))
            .collect()
    })
}

/// Prints a row for each workload's counts (`suite: name  n1 name1, n2 name2, …`, in
/// aligned columns) and a summary line of their sum (`suite: n1 meaning1, …`), all on
/// stderr; returns the sum, which counts `kinds`.
pub fn report(suite: &str, kinds: &'static [Counter], results: &[(&str, Counters)]) -> Counters {
    let name_width = results
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = (0..kinds.len())
        .map(|i| {
            results
                .iter()
                .filter_map(|(_, counts)| counts.iter().nth(i))
                .map(|(_, n)| n.to_string().len())
                .max()
                .unwrap_or(1)
        })
        .collect();
    let mut sum = Counters::new(kinds);
    for (name, counts) in results {
        let columns: Vec<String> = counts
            .iter()
            .zip(&widths)
            .map(|((counter, n), &width)| format!("{n:>width$} {}", counter.name))
            .collect();
        eprintln!("{suite}: {name:<name_width$} {}", columns.join(", "));
        sum += counts;
    }
    eprintln!("{suite}: {sum}");
    sum
}
