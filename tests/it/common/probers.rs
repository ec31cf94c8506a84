//! Which replica probed which backend, read from each replica's own
//! `mcp_health_backend_last_probe_timestamp_seconds` (a replica exports it
//! only for the probes it made itself). The cluster tests check "one prober
//! per backend" with it over a number of probes seen at the fixtures, a
//! condition, instead of counting probes in a wall-clock window, which a
//! loaded machine stretches or shrinks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{PATIENCE, eventually, install_crypto};

/// Backend -> the Unix time of this replica's last probe of it.
pub type LastProbes = HashMap<String, f64>;

/// Backend -> the replicas (indices into the scraped URLs) that probed it.
pub type Probers = BTreeMap<String, BTreeSet<usize>>;

const SERIES: &str = "mcp_health_backend_last_probe_timestamp_seconds{";

/// The last-probe times of `group`'s backends in one scrape of `url`.
pub fn parse_last_probes(exposition: &str, group: &str) -> LastProbes {
    let group_label = format!("group=\"{group}\"");
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix(SERIES))
        .filter(|l| l.contains(&group_label))
        .filter_map(|l| {
            let (labels, value) = l.split_once("} ")?;
            let backend = labels.split("backend=\"").nth(1)?.split('"').next()?;
            Some((backend.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Each replica's last-probe times; a replica that does not answer counts as
/// having probed nothing.
pub async fn last_probes(urls: &[String], group: &str) -> Vec<LastProbes> {
    install_crypto();
    let mut out = Vec::new();
    for url in urls {
        let text = match reqwest::get(url).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(parse_last_probes(&text, group));
    }
    out
}

/// For each of `backends`, the replicas whose last probe of it is later in
/// `after` than in `before`.
pub fn moved(before: &[LastProbes], after: &[LastProbes], backends: &[String]) -> Probers {
    backends
        .iter()
        .map(|b| {
            let replicas = (0..after.len())
                .filter(|&i| {
                    let then = before.get(i).and_then(|m| m.get(b));
                    after[i].get(b).is_some_and(|now| then.is_none_or(|then| now > then))
                })
                .collect();
            (b.clone(), replicas)
        })
        .collect()
}

/// Who probed each backend while every backend took at least `more` probes
/// at its fixture (`counts`: each backend's probe count, in `backends`'
/// order). `more` of 2 or more keeps a probe the fixture counted but whose
/// result was not applied yet from hiding its prober.
pub async fn probers(urls: &[String], group: &str, backends: &[String], counts: impl Fn() -> Vec<u64>, more: u64) -> Probers {
    let before = last_probes(urls, group).await;
    let start = counts();
    eventually(
        &format!("every backend probed {more} more times"),
        || std::future::ready(Some(counts())),
        |now: &Vec<u64>| now.iter().zip(&start).all(|(n, s)| n.saturating_sub(*s) >= more),
    )
    .await;
    let after = last_probes(urls, group).await;
    moved(&before, &after, backends)
}

/// Waits until, over `more` probes of each backend, each was probed by one
/// replica alone (ownership may still be settling when called), and returns
/// that replica per backend.
pub async fn one_prober_each(urls: &[String], group: &str, backends: &[String], counts: impl Fn() -> Vec<u64>, more: u64) -> BTreeMap<String, usize> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = probers(urls, group, backends, &counts, more).await;
        if seen.values().all(|r| r.len() == 1) {
            return seen.into_iter().map(|(b, r)| (b, r.into_iter().next().unwrap_or_default())).collect();
        }
        assert!(tokio::time::Instant::now() < deadline, "never one prober per backend; last seen {seen:?}");
    }
}

/// Waits until the replicas that probed each backend since now satisfy
/// `pred` (say, fail-static: every replica probes every backend itself), and
/// returns them.
pub async fn wait_probers(urls: &[String], group: &str, backends: &[String], what: &str, pred: impl Fn(&BTreeSet<usize>) -> bool) -> Probers {
    let before = last_probes(urls, group).await;
    eventually(
        what,
        || async { Some(moved(&before, &last_probes(urls, group).await, backends)) },
        |seen: &Probers| seen.values().all(&pred),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_moved() {
        let scrape = |b0: &str| {
            format!(
                "# TYPE mcp_health_backend_last_probe_timestamp_seconds gauge\n\
                 mcp_health_backend_last_probe_timestamp_seconds{{group=\"pool\",backend=\"b0\"}} {b0}\n\
                 mcp_health_backend_last_probe_timestamp_seconds{{group=\"other\",backend=\"b1\"}} 5.0\n\
                 mcp_health_backend_last_probe_duration_seconds{{group=\"pool\",backend=\"b1\"}} 0.1\n"
            )
        };
        let first = parse_last_probes(&scrape("1765000000.25"), "pool");
        assert_eq!(first, HashMap::from([("b0".to_owned(), 1765000000.25)]));
        let backends = ["b0".to_owned(), "b1".to_owned()];
        let before = vec![first.clone(), LastProbes::new()];
        let after = vec![parse_last_probes(&scrape("1765000001.5"), "pool"), first];
        let seen = moved(&before, &after, &backends);
        // Replica 0 probed b0 again; replica 1's first b0 probe counts too; nobody probed b1.
        assert_eq!(seen["b0"], BTreeSet::from([0, 1]));
        assert!(seen["b1"].is_empty());
        let same = moved(&after, &after, &backends);
        assert!(same.values().all(BTreeSet::is_empty));
    }
}
