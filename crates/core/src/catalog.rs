//! Tool catalogs as values: each tool's hash (SHA-256 over its RFC 8785
//! canonical JSON without `_meta`), the catalog's fingerprint (SHA-256 over the
//! sorted tool hashes), the diff of two catalogs by tool name, and the
//! required-tools rule. Descriptions are hashed, never kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// How a fingerprint starts; 64 lowercase hex digits follow.
pub const FINGERPRINT_PREFIX: &str = "sha256:";

/// One tool as a catalog keeps it: its name and the hash of its definition,
/// SHA-256 over the RFC 8785 (JCS) canonical JSON of the tool without its
/// top-level `_meta` (so a new field counts and key order does not).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ToolHash {
    pub name: String,
    pub hash: [u8; 32],
    /// Whether the tool's `annotations.readOnlyHint` is true: a synthetic
    /// check may call it without `allowSideEffects` (`check::may_call`).
    pub read_only: bool,
}

/// A whole catalog, read over every page of `tools/list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    /// Sorted by name, then hash (a server may list a name twice).
    pub tools: Vec<ToolHash>,
    /// `sha256:` and the hex SHA-256 over the sorted tool hashes.
    pub fingerprint: String,
}

/// What one probe's catalog read came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogRead {
    /// Every page was read.
    Whole(std::sync::Arc<Catalog>),
    /// The read stopped at a bound (pages or bytes); why, written by us.
    GaveUp(String),
}

/// Why a tool could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("tool {index} of tools/list is not an object with a string name")]
    NoName { index: usize },
    #[error("tool {index} of tools/list cannot be put in canonical form")]
    Canonical {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Whether `s` is a fingerprint in our form: `sha256:` and 64 lowercase hex digits.
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix(FINGERPRINT_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// One tool of a `tools/list` page (the `index`-th of the catalog) as a
/// catalog keeps it, and the length of its canonical JSON (for the read's
/// byte bound).
pub fn hash_tool(index: usize, tool: &Value) -> Result<(ToolHash, usize), ToolError> {
    let object = tool.as_object().ok_or(ToolError::NoName { index })?;
    let name = object.get("name").and_then(Value::as_str).ok_or(ToolError::NoName { index })?;
    let mut without_meta = object.clone();
    without_meta.remove("_meta");
    let canonical = serde_json_canonicalizer::to_vec(&without_meta).map_err(|source| ToolError::Canonical { index, source })?;
    let read_only = object
        .get("annotations")
        .and_then(|a| a.get("readOnlyHint"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let hash = ToolHash {
        name: name.to_owned(),
        hash: Sha256::digest(&canonical).into(),
        read_only,
    };
    Ok((hash, canonical.len()))
}

impl Catalog {
    /// The catalog of `tools` (the `tools` arrays of every page, in order).
    pub fn from_tools<'a>(tools: impl IntoIterator<Item = &'a Value>) -> Result<Catalog, ToolError> {
        let entries = tools
            .into_iter()
            .enumerate()
            .map(|(index, tool)| hash_tool(index, tool).map(|(t, _)| t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Catalog::from_hashes(entries))
    }

    /// The catalog of these tool hashes, in any order.
    pub fn from_hashes(mut tools: Vec<ToolHash>) -> Catalog {
        tools.sort();
        let mut hashes: Vec<&[u8; 32]> = tools.iter().map(|t| &t.hash).collect();
        hashes.sort();
        let mut h = Sha256::new();
        for hash in hashes {
            h.update(hash);
        }
        let fingerprint = format!("{FINGERPRINT_PREFIX}{}", hex(&h.finalize()));
        Catalog { tools, fingerprint }
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    fn by_name(&self) -> BTreeMap<&str, Vec<&[u8; 32]>> {
        let mut m: BTreeMap<&str, Vec<&[u8; 32]>> = BTreeMap::new();
        for t in &self.tools {
            m.entry(&t.name).or_default().push(&t.hash);
        }
        m
    }
}

/// What changed from one catalog to the next, by tool name, each list sorted.
/// A rename is a removal plus an addition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Same name, another definition.
    pub changed: Vec<String>,
}

impl CatalogDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The diff from `old` to `new` by tool name.
pub fn diff(old: &Catalog, new: &Catalog) -> CatalogDiff {
    let (old, new) = (old.by_name(), new.by_name());
    let mut d = CatalogDiff::default();
    for (name, hashes) in &new {
        match old.get(name) {
            None => d.added.push((*name).to_owned()),
            Some(before) if before != hashes => d.changed.push((*name).to_owned()),
            Some(_) => {}
        }
    }
    d.removed = old.keys().filter(|n| !new.contains_key(*n)).map(|n| (*n).to_owned()).collect();
    d
}

/// The required tools `catalog` does not list, in the order `required` names them.
pub fn missing_tools<'a>(required: &'a [String], catalog: &Catalog) -> Vec<&'a str> {
    required
        .iter()
        .map(String::as_str)
        .filter(|r| catalog.tools.binary_search_by(|t| t.name.as_str().cmp(r)).is_err())
        .collect()
}

/// A change of a backend's catalog, as history records it: names and
/// fingerprints only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogChange {
    pub from: String,
    pub to: String,
    /// None when the tools behind `from` are unknown here (a fingerprint
    /// another replica shared).
    pub diff: Option<CatalogDiff>,
}

/// What a backend's status shows of its catalog, and the last whole catalog
/// read (for diffs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownCatalog {
    /// The last whole catalog this replica's probes read.
    pub tools: Option<std::sync::Arc<Catalog>>,
    /// Its fingerprint (or one another replica shared); empty until one is known.
    pub fingerprint: String,
    /// When the fingerprint last changed, or was first known.
    pub changed_at: Option<std::time::SystemTime>,
    /// Why the latest read gave up; empty after a whole read.
    pub note: String,
}

/// What taking one probe's read did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// Something a status shows (fingerprint, its time, the note) changed.
    pub shown: bool,
    /// The catalog moved from a known fingerprint to another.
    pub change: Option<CatalogChange>,
}

impl KnownCatalog {
    /// Takes one probe's read at `now` (None: the probe did not read the
    /// catalog). A read that gave up keeps the last whole catalog and says
    /// why in `note`. The first fingerprint known is not a change.
    pub fn take(&mut self, read: Option<&CatalogRead>, now: std::time::SystemTime) -> Taken {
        match read {
            None => Taken::default(),
            Some(CatalogRead::GaveUp(why)) => {
                let shown = self.note != *why;
                if shown {
                    self.note.clone_from(why);
                }
                Taken { shown, change: None }
            }
            Some(CatalogRead::Whole(c)) => {
                let mut shown = !self.note.is_empty();
                self.note.clear();
                let mut change = None;
                if self.fingerprint != c.fingerprint {
                    shown = true;
                    if !self.fingerprint.is_empty() {
                        change = Some(CatalogChange {
                            from: self.fingerprint.clone(),
                            to: c.fingerprint.clone(),
                            diff: self.tools.as_ref().map(|old| diff(old, c)),
                        });
                    }
                    self.fingerprint.clone_from(&c.fingerprint);
                    self.changed_at = Some(now);
                }
                self.tools = Some(c.clone());
                Taken { shown, change }
            }
        }
    }

    /// Takes what another replica shared (cluster mode): its fingerprint,
    /// time and note. The tools read here are kept only while they are the
    /// catalog the fingerprint names.
    pub fn take_shared(&mut self, fingerprint: &str, changed_at: Option<std::time::SystemTime>, note: &str) {
        if self.tools.as_ref().is_some_and(|t| t.fingerprint != fingerprint) {
            self.tools = None;
        }
        self.fingerprint = fingerprint.to_owned();
        self.changed_at = changed_at;
        self.note = note.to_owned();
    }
}

/// Names a list of a diff shows at most; past it, "and N more".
const DESCRIBED_NAMES: usize = 8;

/// A diff as a short text of tool names, e.g. "added b; removed a".
pub fn describe(d: &CatalogDiff) -> String {
    let list = |what: &str, names: &[String]| {
        (!names.is_empty()).then(|| {
            let mut text = format!("{what} {}", names.iter().take(DESCRIBED_NAMES).cloned().collect::<Vec<_>>().join(", "));
            if names.len() > DESCRIBED_NAMES {
                text.push_str(&format!(" and {} more", names.len() - DESCRIBED_NAMES));
            }
            text
        })
    };
    [list("added", &d.added), list("removed", &d.removed), list("changed", &d.changed)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether a catalog policy of BLOCK with these `accepted` fingerprints
/// refuses `catalog`.
pub fn blocked(accepted: &[String], catalog: &Catalog) -> bool {
    !accepted.contains(&catalog.fingerprint)
}
