//! The checker: overlapping holds on one resource and lost counter updates, the two ways a
//! broken lock shows in a run.

use super::record::{Attempt, Run};

/// Pairs of sections on the same resource whose hold intervals overlap.
pub fn overlapping_pairs(attempts: &[Attempt]) -> Vec<(Attempt, Attempt)> {
    let mut holds: Vec<&Attempt> = attempts.iter().filter(|a| a.hold().is_some()).collect();
    holds.sort_by_key(|a| (a.resource, a.returned));
    let mut pairs = Vec::new();
    for (i, a) in holds.iter().enumerate() {
        let (_, a_end) = a.hold().expect("a section");
        for b in &holds[i + 1..] {
            let (b_start, _) = b.hold().expect("a section");
            if b.resource != a.resource || b_start >= a_end {
                break;
            }
            pairs.push(((*a).clone(), (*b).clone()));
        }
    }
    pairs
}

/// Successful sections minus the counter, summed over resources (`None`: no counter).
pub fn lost_updates(run: &Run) -> Option<i64> {
    run.counters.as_ref().map(|counters| {
        counters
            .iter()
            .enumerate()
            .map(|(r, value)| {
                let done = run.sections().filter(|a| a.resource == r).count();
                i64::try_from(done).expect("count") - value
            })
            .sum()
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::record::{Attempt, Outcome, Run};
    use super::super::report::Report;

    /// The checker itself: an overlap and a lost update are counted, touching intervals are not.
    #[test]
    fn the_checker_sees_overlaps_and_lost_updates() {
        let t = Instant::now();
        let ms = |n: u64| t + Duration::from_millis(n);
        let section = |client, resource, from, to| Attempt {
            client,
            resource,
            requested: ms(from),
            returned: ms(from),
            outcome: Outcome::Section {
                end: ms(to),
                votes: 3,
            },
        };
        let run = Run {
            attempts: vec![
                section(0, 0, 0, 10),
                section(1, 0, 10, 20), // touches the first: no overlap
                section(2, 0, 15, 30), // overlaps the second
                section(3, 1, 0, 30),  // another resource
            ],
            // Resource 0 saw 3 sections but counts 2: one lost update.
            counters: Some(vec![2, 1]),
        };
        let report = Report::of("synthetic", "checker", 4, &run);
        assert_eq!(report.sections, 4);
        assert_eq!(report.overlaps, 1);
        assert_eq!(report.lost_updates, Some(1));
        assert_eq!(report.p99, Duration::ZERO);
    }
}
