//! Named counters that add up and print: what a suite tallies as it checks (cut points,
//! images, outcomes), kept per workload or per thread and summed at the end.
//!
//! A suite lists its counters once, as a `const` slice of [`Counter`]s; the order is the
//! order they print in.

use core::fmt;
use core::ops::AddAssign;

/// One counter: its name, which is its key and its label in a table row, and what a count
/// of it means, its label in a summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    /// The key, and the label in a table row (short).
    pub name: &'static str,
    /// The label in a summary line ("held a commit newer than the last durable one").
    pub meaning: &'static str,
}

impl Counter {
    /// A counter named `name` whose count means `meaning`.
    pub const fn new(name: &'static str, meaning: &'static str) -> Self {
        Counter { name, meaning }
    }
}

/// A count for each of a suite's [`Counter`]s, all zero at first.
///
/// Displays as its summary line: `2 cut points, 30 images, …` (each count with its
/// meaning, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counters {
    kinds: &'static [Counter],
    counts: Vec<u64>,
}

impl Counters {
    /// Zero for each of `kinds`.
    pub fn new(kinds: &'static [Counter]) -> Self {
        Counters {
            kinds,
            counts: vec![0; kinds.len()],
        }
    }

    /// The counters these count.
    pub fn kinds(&self) -> &'static [Counter] {
        self.kinds
    }

    /// Adds `n` to the counter named `name`.
    ///
    /// # Panics
    ///
    /// If there is no counter named `name` (a slip in the suite).
    pub fn add(&mut self, name: &str, n: u64) {
        let i = self.index(name);
        self.counts[i] += n;
    }

    /// The count of the counter named `name`.
    ///
    /// # Panics
    ///
    /// If there is no counter named `name`.
    pub fn get(&self, name: &str) -> u64 {
        self.counts[self.index(name)]
    }

    /// Each counter with its count, in order.
    pub fn iter(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        self.kinds.iter().copied().zip(self.counts.iter().copied())
    }

    fn index(&self, name: &str) -> usize {
        self.kinds
            .iter()
            .position(|k| k.name == name)
            .unwrap_or_else(|| panic!("no counter named {name:?} among {:?}", self.kinds))
    }
}

impl AddAssign<&Counters> for Counters {
    /// Adds `other`'s counts to these, counter by counter.
    ///
    /// # Panics
    ///
    /// If `other` counts other counters.
    fn add_assign(&mut self, other: &Counters) {
        assert_eq!(self.kinds, other.kinds, "adding counts of other counters");
        for (count, n) in self.counts.iter_mut().zip(&other.counts) {
            *count += n;
        }
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (counter, n)) in self.iter().enumerate() {
            let comma = if i == 0 { "" } else { ", " };
            write!(f, "{comma}{n} {}", counter.meaning)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[Counter] = &[
        Counter::new("points", "cut points"),
        Counter::new("newer", "held a newer commit"),
    ];

    #[test]
    fn counters_add_up_and_print() {
        let mut a = Counters::new(KINDS);
        a.add("points", 3);
        let mut b = Counters::new(KINDS);
        b.add("points", 1);
        b.add("newer", 2);
        a += &b;
        assert_eq!((a.get("points"), a.get("newer")), (4, 2));
        assert_eq!(a.to_string(), "4 cut points, 2 held a newer commit");
    }

    #[test]
    #[should_panic(expected = "no counter named")]
    fn an_unknown_name_is_a_slip() {
        Counters::new(KINDS).add("images", 1);
    }
}
