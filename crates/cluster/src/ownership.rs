//! Which live member probes which backend: rendezvous (highest random weight)
//! hashing over the member ids. Pure: every replica computes the same owner
//! from the same member set, and when a member joins or leaves only the
//! backends it wins or held move.

/// The owner of `backend_key` ("group/backend") among `members` (member ids),
/// or None when there are no members. Ties (astronomically unlikely) go to the
/// smaller id, so the answer never depends on the order of `members`.
pub fn owner<'a, I, S>(backend_key: &str, members: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a S>,
    S: AsRef<str> + ?Sized + 'a,
{
    members
        .into_iter()
        .map(AsRef::as_ref)
        .max_by(|a, b| weight(backend_key, a).cmp(&weight(backend_key, b)).then_with(|| b.cmp(a)))
}

/// The key of a backend for ownership and verdicts.
pub fn backend_key(group: &str, backend: &str) -> String {
    format!("{group}/{backend}")
}

/// The key of one discovered endpoint for ownership: its backend's key and
/// its address, so one backend's endpoints spread over the members.
pub fn endpoint_key(group: &str, backend: &str, address: std::net::SocketAddr) -> String {
    format!("{group}/{backend}/{address}")
}

/// A stable 64-bit weight of (backend, member): FNV-1a over both with a
/// separator, then the splitmix64 finalizer for avalanche. Stable across
/// processes, builds and platforms (unlike `std`'s hasher, whose algorithm
/// may change between releases).
fn weight(backend_key: &str, member: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in backend_key.bytes().chain([0u8]).chain(member.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn owners(keys: &[String], members: &[&str]) -> BTreeMap<String, String> {
        keys.iter()
            .map(|k| (k.clone(), owner(k, members.iter().copied()).unwrap().to_owned()))
            .collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| backend_key(&format!("g{}", i % 17), &format!("b{i}"))).collect()
    }

    #[test]
    fn owner_table() {
        // Fixed answers: the hash is part of the cluster's wire contract
        // (replicas of different builds must agree), so it must never change.
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("web/a", &[], None),
            ("web/a", &["m1"], Some("m1")),
            ("web/a", &["m1", "m2", "m3"], Some("m2")),
            ("web/b", &["m1", "m2", "m3"], Some("m2")),
            ("api/x", &["m1", "m2", "m3"], Some("m3")),
            ("api/x", &["m1", "m2"], Some("m2")),
            ("api/y", &["m3", "m1", "m2"], Some("m2")),
        ];
        for (key, members, want) in cases {
            assert_eq!(owner(key, members.iter().copied()), *want, "{key} {members:?}");
        }
        assert_eq!(weight("web/a", "m1"), 0x9402_dd26_0077_e7bb);
        assert_eq!(weight("api/y", "m1"), 0x037e_3c44_cc78_04dd);
        assert_ne!(weight("web/a", "m1"), weight("web/a", "m2"));
        assert_ne!(weight("web/a", "m1"), weight("web/am", "1"), "the separator keeps (key, member) pairs apart");
    }

    #[test]
    fn endpoint_owner_table() {
        let a = |last: u8| std::net::SocketAddr::from(([127, 0, 0, last], 8080));
        // Fixed answers, as for backends: replicas of different builds must agree.
        let members = ["m1", "m2", "m3"];
        let got: Vec<(u8, &str)> = (2..=10).map(|l| (l, owner(&endpoint_key("web", "pods", a(l)), members).unwrap())).collect();
        // One backend's nine pods over three members: every member gets some.
        let want = [
            (2, "m2"),
            (3, "m3"),
            (4, "m3"),
            (5, "m1"),
            (6, "m2"),
            (7, "m2"),
            (8, "m2"),
            (9, "m1"),
            (10, "m2"),
        ];
        assert_eq!(got, want);
        // The backend itself goes to one member; its endpoints are not all that member's.
        assert_eq!(owner(&backend_key("web", "pods"), members), Some("m3"));
        // m3 leaves: only its endpoints move.
        for (l, before) in want {
            let after = owner(&endpoint_key("web", "pods", a(l)), ["m1", "m2"]).unwrap();
            if before != "m3" {
                assert_eq!(after, before, "{l}");
            }
        }
        assert_eq!(endpoint_key("web", "pods", a(2)), "web/pods/127.0.0.2:8080");
        assert_eq!(endpoint_key("web", "pods", "[fd00::1]:443".parse().unwrap()), "web/pods/[fd00::1]:443");
    }

    #[test]
    fn the_answer_does_not_depend_on_member_order() {
        for k in keys(200) {
            let a = owner(&k, ["x", "y", "z", "w"]).unwrap();
            let b = owner(&k, ["w", "z", "y", "x"]).unwrap();
            assert_eq!(a, b, "{k}");
        }
    }

    #[test]
    fn load_is_spread_evenly() {
        let all = keys(3000);
        let members = ["1b3f", "77a0", "c042"];
        let map = owners(&all, &members);
        for m in members {
            let n = map.values().filter(|o| *o == m).count();
            assert!((800..=1200).contains(&n), "{m} owns {n} of 3000");
        }
    }

    #[test]
    fn only_the_backends_that_must_move_do() {
        let all = keys(3000);
        let before = owners(&all, &["a", "b", "c"]);
        // A member leaves: only its backends move, spread over the others.
        let after = owners(&all, &["a", "c"]);
        for k in &all {
            if before[k] != "b" {
                assert_eq!(before[k], after[k], "{k} moved although its owner stayed");
            }
        }
        // A member joins: backends move only to it, about a quarter of them.
        let joined = owners(&all, &["a", "b", "c", "d"]);
        let mut moved = 0;
        for k in &all {
            if before[k] != joined[k] {
                assert_eq!(joined[k], "d", "{k} moved between old members");
                moved += 1;
            }
        }
        assert!((600..=900).contains(&moved), "{moved} of 3000 moved to the new member");
    }
}
