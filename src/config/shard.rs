//! Sharding one configuration across replicas (`--shard.index`, `--shard.count`): which
//! targets a replica keeps, chosen by rendezvous (highest random weight) hashing, so that
//! going from n to n + 1 shards moves only the targets the new shard wins, about 1/(n + 1)
//! of them, and never moves a target between two shards that both existed.
//!
//! Targets that must be probed by one exporter are placed as one unit, under one key:
//! the members of a failover group (the group decides from their probes), and a
//! `replica_of` target with its primary (the lag is read from the primary's heartbeat row,
//! which is this exporter's). Units that share a target (a target in two groups) merge.
//! The key of a unit is the name of its first group in configuration order; a unit with no
//! group is keyed by its primary (the target that is nobody's replica), a lone target by
//! its own name.

use std::collections::HashMap;

use super::{Config, Endpoint};

/// This replica's share: shard `index` of `count`. `Shard::WHOLE` (0 of 1) keeps every
/// target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

/// Why the shard flags do not name a shard; the messages say what to pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard.count must be at least 1 (1, the default, probes every target)")]
    ZeroCount,
    #[error(
        "--shard.index {index} is not below --shard.count {count}: shards are numbered 0 to {}",
        count - 1
    )]
    IndexOutOfRange { index: u32, count: u32 },
    #[error(
        "--shard.count {count} needs the index of this replica: pass --shard.index (0 to {}) or set DBVIGIL_SHARD_INDEX, or run as a StatefulSet pod, whose name ends in -<ordinal> (read from POD_NAME, else HOSTNAME: {name:?})",
        count - 1
    )]
    NoIndex { count: u32, name: String },
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroCount);
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// The shard from the flags: `index` when given; else, with more than one shard, the
    /// ordinal at the end of `pod_name` (a StatefulSet pod's `NAME-<ordinal>`).
    pub fn resolve(index: Option<u32>, count: u32, pod_name: &str) -> Result<Shard, ShardError> {
        let index = match index {
            Some(i) => i,
            None if count <= 1 => 0,
            None => ordinal(pod_name).ok_or_else(|| ShardError::NoIndex {
                count,
                name: pod_name.to_owned(),
            })?,
        };
        Shard::new(index, count)
    }

    /// This shard's part of `config` (its targets, and the groups of its targets; the rest
    /// as written), and where the other targets went.
    pub fn split(&self, mut config: Config) -> (Config, Placement) {
        let owners = owners(&config, self.count);
        let configured_targets = config.targets.len();
        let elsewhere: HashMap<String, u32> = owners
            .iter()
            .filter(|(_, o)| **o != self.index)
            .map(|(n, o)| (n.clone(), *o))
            .collect();
        config.targets.retain(|t| !elsewhere.contains_key(&t.name));
        // A group's members share one owner, so its first member tells.
        config
            .groups
            .retain(|g| g.members.first().is_none_or(|m| !elsewhere.contains_key(m)));
        let placement = Placement {
            shard: *self,
            configured_targets,
            elsewhere,
        };
        (config, placement)
    }
}

/// Where a configuration's targets went, as one replica sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placement {
    pub shard: Shard,
    /// Targets in the whole configuration, on every shard.
    pub configured_targets: usize,
    /// The targets other shards hold, with the index of the shard holding each.
    pub elsewhere: HashMap<String, u32>,
}

/// The number after the last `-` of a StatefulSet pod's name (`dbvigil-2` -> 2).
pub fn ordinal(pod_name: &str) -> Option<u32> {
    let (_, digits) = pod_name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The shard (of `count`) that holds each target of `config`, by target name.
pub fn owners(config: &Config, count: u32) -> HashMap<String, u32> {
    placement_keys(config)
        .into_iter()
        .map(|(name, key)| {
            let owner = owner(&key, count);
            (name, owner)
        })
        .collect()
}

/// The shard (of `count`) that wins `key`: the one with the highest weight, the lowest
/// index on a tie.
pub fn owner(key: &str, count: u32) -> u32 {
    let h = fnv1a64(key.as_bytes());
    let mut best = (0, weight(h, 0));
    for i in 1..count {
        let w = weight(h, i);
        if w > best.1 {
            best = (i, w);
        }
    }
    best.0
}

/// Each target's placement key (see the module's documentation), in configuration order.
fn placement_keys(config: &Config) -> Vec<(String, String)> {
    let index: HashMap<&str, usize> = config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut units = Units((0..config.targets.len()).collect());
    for g in &config.groups {
        let members: Vec<usize> = g
            .members
            .iter()
            .filter_map(|m| index.get(m.as_str()).copied())
            .collect();
        for pair in members.windows(2) {
            units.join(pair[0], pair[1]);
        }
    }
    let primary_of = |i: usize| match &config.targets[i].endpoint {
        Endpoint::Server(s) => s.replica_of.as_deref().and_then(|p| index.get(p).copied()),
        _ => None,
    };
    for i in 0..config.targets.len() {
        if let Some(p) = primary_of(i) {
            units.join(i, p);
        }
    }
    let mut keys: HashMap<usize, &str> = HashMap::new();
    for g in &config.groups {
        if let Some(&first) = g.members.first().and_then(|m| index.get(m.as_str())) {
            keys.entry(units.root(first)).or_insert(&g.name);
        }
    }
    // Then primaries, then (only for a circle of replicas) the first target.
    for i in 0..config.targets.len() {
        if primary_of(i).is_none() {
            keys.entry(units.root(i)).or_insert(&config.targets[i].name);
        }
    }
    for (i, t) in config.targets.iter().enumerate() {
        keys.entry(units.root(i)).or_insert(&t.name);
    }
    config
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), keys[&units.root(i)].to_owned()))
        .collect()
}

/// Union-find over target indices: the units placed together.
struct Units(Vec<usize>);

impl Units {
    fn root(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn join(&mut self, a: usize, b: usize) {
        let (a, b) = (self.root(a), self.root(b));
        self.0[a.max(b)] = a.min(b);
    }
}

/// FNV-1a, 64 bits, written out here: placement must not change between builds, Rust
/// releases or platforms, or an upgrade would reshuffle every replica's targets. std's
/// `DefaultHasher` promises none of that (its algorithm may change in any release).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The weight of shard `index` for a key hashing to `h`: the splitmix64 finaliser over
/// both, since FNV alone mixes its last input poorly and the shards differ only there.
fn weight(h: u64, index: u32) -> u64 {
    let mut z = h ^ u64::from(index)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(targets: usize, groups: &str) -> Config {
        let mut yaml = String::from("targets:\n");
        for i in 0..targets {
            yaml.push_str(&format!(
                "  - {{name: t{i:04}, kind: tcp, host: 127.0.0.1, port: 1}}\n"
            ));
        }
        yaml.push_str(groups);
        crate::config::parse(&yaml, "test.yml", std::path::Path::new("."), "test").unwrap()
    }

    #[test]
    fn the_hash_is_fnv1a_as_published() {
        // The reference values of the FNV specification: placement depends on them.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_target_is_on_exactly_one_shard() {
        let c = config(200, "");
        let parts: Vec<Config> = (0..3)
            .map(|i| Shard::new(i, 3).unwrap().split(c.clone()).0)
            .collect();
        let mut seen: Vec<&str> = parts
            .iter()
            .flat_map(|p| p.targets.iter().map(|t| t.name.as_str()))
            .collect();
        seen.sort_unstable();
        let all: Vec<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(seen, all);
        for p in &parts {
            assert!(
                (40..=100).contains(&p.targets.len()),
                "a shard holds {} of 200",
                p.targets.len()
            );
        }
        let (part, placement) = Shard::WHOLE.split(c.clone());
        assert_eq!(part, c);
        assert!(placement.elsewhere.is_empty());
    }

    #[test]
    fn group_members_and_replicas_stay_together() {
        let groups = "groups:\n\
            - {name: pair, eligibility: reachable, members: [t0001, t0002]}\n\
            - {name: trio, eligibility: reachable, members: [t0010, t0011, t0012]}\n\
            - {name: also, eligibility: reachable, members: [t0012, t0013]}\n";
        let c = config(20, groups);
        for count in 2..8 {
            let o = owners(&c, count);
            assert_eq!(o["t0001"], o["t0002"]);
            // A target in two groups joins them: both groups land on the first's shard.
            for m in ["t0011", "t0012", "t0013"] {
                assert_eq!(o["t0010"], o[m], "{m} with {count} shards");
            }
            assert_eq!(o["t0010"], owner("trio", count));
            for i in 0..count {
                let (part, _) = Shard::new(i, count).unwrap().split(c.clone());
                let held = |n: &str| part.targets.iter().any(|t| t.name == n);
                let has_group = |g: &str| part.groups.iter().any(|x| x.name == g);
                assert_eq!(held("t0001"), has_group("pair"));
                assert_eq!(held("t0010"), has_group("trio"));
                assert_eq!(held("t0010"), has_group("also"));
            }
        }
        let replicas = "targets:\n\
            - {name: primary, kind: postgres, url: \"postgres://u@127.0.0.1/db\"}\n\
            - {name: replica, kind: postgres, url: \"postgres://u@127.0.0.1:5433/db\", replica_of: primary}\n";
        let c = crate::config::parse(replicas, "t.yml", std::path::Path::new("."), "t").unwrap();
        for count in 2..8 {
            let o = owners(&c, count);
            assert_eq!(o["primary"], o["replica"]);
            assert_eq!(o["primary"], owner("primary", count));
        }
    }

    #[test]
    fn a_fourth_shard_takes_about_a_quarter_and_nothing_else_moves() {
        let c = config(1000, "");
        let (three, four) = (owners(&c, 3), owners(&c, 4));
        let mut moved = 0;
        for (name, before) in &three {
            let after = four[name];
            if after != *before {
                assert_eq!(after, 3, "{name} moved from {before} to {after}");
                moved += 1;
            }
        }
        let share = f64::from(moved) / 1000.0;
        assert!((0.18..=0.32).contains(&share), "moved share {share}");
    }

    #[test]
    fn the_shard_comes_from_the_flags_or_the_pod_ordinal() {
        assert_eq!(Shard::resolve(None, 1, "laptop"), Ok(Shard::WHOLE));
        assert_eq!(Shard::resolve(Some(2), 3, "x"), Shard::new(2, 3));
        assert_eq!(Shard::resolve(None, 3, "dbvigil-2"), Shard::new(2, 3));
        assert_eq!(ordinal("dbvigil-sharded-12"), Some(12));
        assert_eq!(ordinal("dbvigil"), None);
        assert_eq!(ordinal("dbvigil-"), None);
        assert_eq!(ordinal("dbvigil-x1"), None);
        assert_eq!(Shard::resolve(None, 0, "a"), Err(ShardError::ZeroCount));
        assert_eq!(
            Shard::resolve(None, 3, "dbvigil-3")
                .unwrap_err()
                .to_string(),
            "--shard.index 3 is not below --shard.count 3: shards are numbered 0 to 2"
        );
        assert_eq!(
            Shard::resolve(None, 3, "laptop").unwrap_err(),
            ShardError::NoIndex {
                count: 3,
                name: "laptop".to_owned()
            }
        );
    }
}
