//! `Persist` over redb: one table from group name to (generation, GroupSpec
//! protobuf bytes). Every write is its own transaction committed with
//! `Durability::Immediate`, so a returned `put` survives `kill -9` and power loss.
//! A commit waits for the disk, so each write runs on the blocking pool.

use std::path::Path;
use std::sync::Arc;

use prost::Message;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::{DATABASE_FILE, Persist, StoreError, StoreFuture, StoredGroup};
use mcp_health_proto::v1::GroupSpec;

const GROUPS: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("groups");

pub struct RedbStore {
    /// Shared with the blocking task of a write in flight; the file lock is
    /// released when the last clone drops (a write's task ends before its
    /// future resolves, so dropping the store after awaiting it releases it).
    db: Arc<Database>,
}

impl RedbStore {
    /// Opens (or creates) the store under `dir`, creating `dir` if needed. A
    /// store left by a crash is repaired by redb on open.
    pub fn open(dir: &Path) -> Result<RedbStore, StoreError> {
        let path = dir.join(DATABASE_FILE);
        let open_err = |e: redb::Error| StoreError::Open {
            path: path.display().to_string(),
            source: Box::new(e),
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(redb::Error::Io(e)))?;
        let db = Database::create(&path).map_err(|e| match e {
            // redb locks the file (flock) for as long as a process has it open.
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked {
                dir: dir.display().to_string(),
            },
            e => open_err(e.into()),
        })?;
        // Create the table up front so reads of a fresh store find it.
        let tx = db.begin_write().map_err(|e| open_err(e.into()))?;
        tx.open_table(GROUPS).map_err(|e| open_err(e.into()))?;
        tx.commit().map_err(|e| open_err(e.into()))?;
        Ok(RedbStore { db: Arc::new(db) })
    }

    /// Every stored group, in name order.
    pub fn load(&self) -> Result<Vec<StoredGroup>, StoreError> {
        let read = |e: redb::Error| StoreError::Read(Box::new(e));
        let tx = self.db.begin_read().map_err(|e| read(e.into()))?;
        let table = tx.open_table(GROUPS).map_err(|e| read(e.into()))?;
        let mut groups = Vec::new();
        for entry in table.iter().map_err(|e| read(e.into()))? {
            let (key, value) = entry.map_err(|e| read(e.into()))?;
            let name = key.value().to_owned();
            let (generation, bytes) = value.value();
            let spec = GroupSpec::decode(bytes).map_err(|e| StoreError::Decode {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            if spec.name != name {
                return Err(StoreError::Decode {
                    name,
                    reason: format!("the stored spec is named {:?}", spec.name),
                });
            }
            groups.push(StoredGroup { spec, generation });
        }
        Ok(groups)
    }

    /// Runs `change` in its own write transaction on the blocking pool.
    fn write(&self, change: impl FnOnce(&mut redb::Table<'_, &str, (u64, &[u8])>) -> Result<(), redb::StorageError> + Send + 'static) -> StoreFuture<'static> {
        let db = self.db.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || write_blocking(&db, change))
                .await
                .map_err(|e| StoreError::Write(Box::new(e)))?
        })
    }
}

fn write_blocking(db: &Database, change: impl FnOnce(&mut redb::Table<'_, &str, (u64, &[u8])>) -> Result<(), redb::StorageError>) -> Result<(), StoreError> {
    let err = |e: redb::Error| StoreError::Write(Box::new(e));
    let mut tx = db.begin_write().map_err(|e| err(e.into()))?;
    // The default, stated: the commit returns only once it is on disk.
    tx.set_durability(Durability::Immediate);
    {
        let mut table = tx.open_table(GROUPS).map_err(|e| err(e.into()))?;
        change(&mut table).map_err(|e| err(e.into()))?;
    }
    tx.commit().map_err(|e| err(e.into()))
}

impl Persist for RedbStore {
    fn put<'a>(&'a self, spec: &'a GroupSpec, generation: u64) -> StoreFuture<'a> {
        let (name, bytes) = (spec.name.clone(), spec.encode_to_vec());
        self.write(move |t| t.insert(name.as_str(), (generation, bytes.as_slice())).map(drop))
    }

    fn remove<'a>(&'a self, name: &'a str) -> StoreFuture<'a> {
        let name = name.to_owned();
        self.write(move |t| t.remove(name.as_str()).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, url: &str) -> GroupSpec {
        GroupSpec {
            name: name.into(),
            backends: vec![mcp_health_proto::v1::BackendSpec {
                name: "a".into(),
                url: url.into(),
                ..Default::default()
            }],
            policy: None,
        }
    }

    #[tokio::test]
    async fn put_remove_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            assert!(store.load().unwrap().is_empty());
            store.put(&spec("one", "http://127.0.0.1:1/a"), 1).await.unwrap();
            store.put(&spec("two", "http://127.0.0.1:1/b"), 1).await.unwrap();
            store.put(&spec("one", "http://127.0.0.1:1/c"), 2).await.unwrap();
            store.remove("two").await.unwrap();
            store.remove("never-stored").await.unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        assert_eq!(
            store.load().unwrap(),
            vec![StoredGroup {
                spec: spec("one", "http://127.0.0.1:1/c"),
                generation: 2
            }]
        );
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RedbStore::open(dir.path()).unwrap();
        let err = RedbStore::open(dir.path()).err().expect("second open fails");
        assert!(err.to_string().contains("groups.redb"), "{err}");
    }
}
