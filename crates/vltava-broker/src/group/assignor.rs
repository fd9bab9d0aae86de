//! Server-side partition assignors for KIP-848 consumer groups.

use std::collections::{BTreeMap, BTreeSet};

/// A member's view for assignment: what it subscribes to and what it owns.
pub struct MemberSpec<'a> {
    pub subscribed: &'a BTreeSet<String>,
    pub current: &'a Assignment,
}

/// topic → partitions.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
pub const ASSIGNORS: &[&str] = &[UNIFORM, RANGE];

pub fn assign(
    assignor: &str,
    members: &BTreeMap<String, MemberSpec<'_>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        RANGE => range(members, partition_counts),
        _ => uniform(members, partition_counts),
    }
}

/// Per topic, the subscribed members in id order each take a contiguous
/// range; the first `partitions % members` take one more.
fn range(
    members: &BTreeMap<String, MemberSpec<'_>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, spec)| spec.subscribed.contains(topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.into_iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            if take > 0 {
                let entry = out.get_mut(member).expect("member present");
                entry
                    .entry(topic.clone())
                    .or_default()
                    .extend(next..next + take);
            }
            next += take;
        }
    }
    out
}

/// Balances partition counts across members, keeping each member's current
/// partitions where that does not unbalance the group (sticky).
fn uniform(
    members: &BTreeMap<String, MemberSpec<'_>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return out;
    }
    let all: Vec<(String, i32)> = partition_counts
        .iter()
        .filter(|(t, _)| members.values().any(|m| m.subscribed.contains(*t)))
        .flat_map(|(t, &n)| (0..n).map(move |p| (t.clone(), p)))
        .collect();
    let quota = all.len().div_ceil(members.len());
    let mut taken: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut counts: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    // Keep what members already own, up to the quota.
    for (id, spec) in members {
        for (topic, partitions) in spec.current {
            if !spec.subscribed.contains(topic) {
                continue;
            }
            let count = partition_counts.get(topic).copied().unwrap_or(0);
            for &p in partitions {
                let key = (topic.clone(), p);
                if p < count && counts[id] < quota && !taken.contains(&key) {
                    taken.insert(key);
                    *counts.get_mut(id).expect("member") += 1;
                    out.get_mut(id)
                        .expect("member")
                        .entry(topic.clone())
                        .or_default()
                        .insert(p);
                }
            }
        }
    }
    // Hand out the rest to the least-loaded subscriber.
    for (topic, p) in all {
        if taken.contains(&(topic.clone(), p)) {
            continue;
        }
        let target = members
            .iter()
            .filter(|(_, spec)| spec.subscribed.contains(&topic))
            .min_by_key(|(id, _)| (counts[id], (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(id) = target {
            *counts.get_mut(&id).expect("member") += 1;
            out.get_mut(&id)
                .expect("member")
                .entry(topic.clone())
                .or_default()
                .insert(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let s = subs(&["t"]);
        let empty = Assignment::new();
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|m| {
                (
                    m.to_string(),
                    MemberSpec {
                        subscribed: &s,
                        current: &empty,
                    },
                )
            })
            .collect();
        let counts = BTreeMap::from([("t".to_string(), 7)]);
        let out = assign(RANGE, &members, &counts);
        assert_eq!(out["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"]["t"], BTreeSet::from([3, 4]));
        assert_eq!(out["c"]["t"], BTreeSet::from([5, 6]));
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let s = subs(&["t"]);
        let empty = Assignment::new();
        let owned = Assignment::from([("t".to_string(), BTreeSet::from([0, 1, 2, 3, 4, 5]))]);
        let members: BTreeMap<String, MemberSpec> = BTreeMap::from([
            (
                "a".to_string(),
                MemberSpec {
                    subscribed: &s,
                    current: &owned,
                },
            ),
            (
                "b".to_string(),
                MemberSpec {
                    subscribed: &s,
                    current: &empty,
                },
            ),
            (
                "c".to_string(),
                MemberSpec {
                    subscribed: &s,
                    current: &empty,
                },
            ),
        ]);
        let counts = BTreeMap::from([("t".to_string(), 6)]);
        let out = assign(UNIFORM, &members, &counts);
        assert_eq!(
            out["a"]["t"],
            BTreeSet::from([0, 1]),
            "keeps its first partitions"
        );
        let mut all: Vec<i32> = out.values().flat_map(|a| a["t"].iter().copied()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
        assert!(out.values().all(|a| a["t"].len() == 2));
    }
}
