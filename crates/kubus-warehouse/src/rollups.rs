//! Rollup storage: per cube and facts version, one Parquet file per rollup (named by the rollup and the
//! fingerprint of its definition) and a manifest listing them. A rollup is only ever read for the facts version
//! it was built from, so a query never combines facts of one version with a rollup of another; rollups of earlier
//! versions stay for `--as-of`. Files are written under a temporary name and renamed into place.

use crate::{Error, Result, Warehouse};
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::config::{ParquetColumnOptions, TableParquetOptions};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A rollup stored for one facts version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRollup {
    /// Rollup name.
    pub name: String,
    /// Fingerprint of its definition when it was built.
    pub fingerprint: String,
    /// Its file, relative to the cube's rollup directory (unique per build).
    pub file: String,
    /// Rows (cells).
    pub rows: u64,
    /// File size in bytes.
    pub bytes: u64,
    /// Build time in milliseconds: writing it, and the aggregation over the facts it was built in.
    pub build_ms: u64,
    /// The rollups built by the same aggregation over the facts (itself included).
    #[serde(default)]
    pub scan: Vec<String>,
    /// The dictionary files (by value column) whose ids its distinct counts' bitmaps hold.
    #[serde(default)]
    pub dictionaries: std::collections::BTreeMap<String, String>,
    /// The earlier facts version whose stored rows of this rollup it was made from with the facts changed since
    /// (merged with the added facts' rows, or its changed periods built again); `None`: built from all the facts.
    #[serde(default)]
    pub merged_from: Option<u64>,
}

/// What [`Warehouse::prune_rollups`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    /// The facts versions whose rollups were removed.
    pub versions: Vec<u64>,
    /// Files removed, and their bytes.
    pub files: u64,
    pub bytes: u64,
    /// How many of the latest versions keep their rollups.
    pub keep: u64,
}

impl Warehouse {
    /// Directory of a cube's rollups.
    pub fn rollups_dir(&self, cube: &str) -> PathBuf {
        self.root.join("rollups").join(cube)
    }

    fn manifest_path(&self, cube: &str, version: u64) -> PathBuf {
        self.rollups_dir(cube).join(format!("v{version}.json"))
    }

    /// The rollups stored for a facts version (none when none were built).
    pub fn stored_rollups(&self, cube: &str, version: u64) -> Result<Vec<StoredRollup>> {
        let path = self.manifest_path(cube, version);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Directory { path, source }),
        };
        serde_json::from_str(&text).map_err(|e| Error::Directory { path, source: std::io::Error::other(e) })
    }

    /// Records the rollups stored for a facts version (replacing the earlier record).
    pub fn record_rollups(&self, cube: &str, version: u64, rollups: &[StoredRollup]) -> Result<()> {
        let path = self.manifest_path(cube, version);
        let text = serde_json::to_string_pretty(rollups).expect("plain data serializes");
        write_atomically(&path, text.as_bytes())
    }

    /// Runs `rows` and stores the result as the rollup `name` of a facts version.
    pub async fn store_rollup(
        &self,
        cube: &str,
        name: &str,
        version: u64,
        fingerprint: &str,
        rows: DataFrame,
    ) -> Result<StoredRollup> {
        let started = std::time::Instant::now();
        let dir = self.rollups_dir(cube);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Directory { path: dir.clone(), source })?;
        // A build of its own in the name: a warehouse rebuilt from scratch reaches the same version again, and a
        // reader that held the earlier file in memory must not take it for this one.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let file = format!("{name}.v{version}.{fingerprint}.{nanos:x}.parquet");
        let path = dir.join(&file);
        let temporary = dir.join(format!(".{file}.{}.tmp", std::process::id()));
        let read = |source| Error::Read { table: format!("{cube} rollup {name}"), source };
        // Zstandard at its fastest level: the dictionary of 2M persons' ids at 50M facts, rewritten with pyarrow,
        // took 15 MB instead of 16 MB at the default level 3, in 60 % of the time, and read in half. Cells' bitmaps
        // are written as they are: their ids in few dense containers, level 3 saved 1 to 17 % of them for much of
        // the time a merged rollup took to write, and neither a dictionary nor bounds of bitmaps help a reader.
        let mut options = TableParquetOptions::default();
        options.global.compression = Some("zstd(1)".to_owned());
        for field in rows.schema().fields() {
            if matches!(field.data_type(), DataType::Binary | DataType::BinaryView | DataType::LargeBinary) {
                let plain = ParquetColumnOptions {
                    compression: Some("uncompressed".to_owned()),
                    dictionary_enabled: Some(false),
                    statistics_enabled: Some("none".to_owned()),
                    ..Default::default()
                };
                options.column_specific_options.insert(field.name().clone(), plain);
            }
        }
        let written = rows
            .write_parquet(
                &temporary.display().to_string(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                Some(options),
            )
            .await
            .map_err(read)?;
        let count: u64 = written
            .iter()
            .filter_map(|b: &RecordBatch| {
                b.column(0).as_any().downcast_ref::<UInt64Array>().map(|c| c.iter().flatten().sum::<u64>())
            })
            .sum();
        std::fs::rename(&temporary, &path).map_err(|source| Error::Directory { path: path.clone(), source })?;
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default();
        Ok(StoredRollup {
            name: name.to_owned(),
            fingerprint: fingerprint.to_owned(),
            file,
            rows: count,
            bytes,
            build_ms: started.elapsed().as_millis() as u64,
            scan: Vec::new(),
            dictionaries: Default::default(),
            merged_from: None,
        })
    }

    /// Stores a dictionary of dense ids (`value`, `id`) that a version's rollups were built with; returns its file.
    pub async fn store_dictionary(
        &self,
        ctx: &SessionContext,
        cube: &str,
        column: &str,
        version: u64,
        ids: RecordBatch,
    ) -> Result<String> {
        let df = ctx.read_batch(ids).map_err(|source| Error::Read { table: format!("{cube} ids"), source })?;
        Ok(self.store_rollup(cube, &format!("ids_{column}"), version, "dictionary", df).await?.file)
    }

    /// A dictionary stored by [`store_dictionary`](Self::store_dictionary), `None` where its file is gone.
    pub async fn dictionary(&self, ctx: &SessionContext, cube: &str, file: &str) -> Result<Option<RecordBatch>> {
        let path = self.rollups_dir(cube).join(file);
        if !path.is_file() {
            return Ok(None);
        }
        let read = |source| Error::Read { table: format!("{cube} dictionary {file}"), source };
        let df = ctx.read_parquet(path.display().to_string(), ParquetReadOptions::default()).await.map_err(read)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(read)?;
        let all = datafusion::arrow::compute::concat_batches(&schema, &batches)
            .map_err(|source| Error::Arrow { table: cube.to_owned(), source })?;
        Ok(Some(all))
    }

    /// A stored rollup as a table.
    pub async fn rollup_table(
        &self,
        ctx: &SessionContext,
        cube: &str,
        stored: &StoredRollup,
    ) -> Result<Arc<dyn TableProvider>> {
        let path = self.rollups_dir(cube).join(&stored.file);
        let read = |source| Error::Read { table: format!("{cube} rollup {}", stored.name), source };
        let df = ctx.read_parquet(path.display().to_string(), ParquetReadOptions::default()).await.map_err(read)?;
        Ok(df.into_view())
    }

    /// Removes the rollups of all but the latest `keep` facts versions that have them (at least the latest is kept):
    /// their manifests first, so that no manifest names a missing file, then the files they named that no kept
    /// manifest names. A build running meanwhile writes files no earlier manifest names, and loses none. A query
    /// as of a version whose rollups are gone reads its facts.
    pub fn prune_rollups(&self, cube: &str, keep: u64) -> Result<Pruned> {
        let dir = self.rollups_dir(cube);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pruned { keep, ..Pruned::default() }),
            Err(source) => return Err(Error::Directory { path: dir, source }),
        };
        let mut versions: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.strip_suffix(".json")?.parse().ok())
            .collect();
        versions.sort_unstable();
        let keep = keep.max(1);
        let cut = versions.len().saturating_sub(keep as usize);
        let (gone, kept) = versions.split_at(cut);
        let named = |version: &u64| -> Result<Vec<String>> {
            let stored = self.stored_rollups(cube, *version)?;
            Ok(stored.into_iter().flat_map(|s| std::iter::once(s.file).chain(s.dictionaries.into_values())).collect())
        };
        let still: std::collections::BTreeSet<String> =
            kept.iter().map(named).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
        let mut files = std::collections::BTreeSet::new();
        for version in gone {
            files.extend(named(version)?.into_iter().filter(|f| !still.contains(f)));
            let path = self.manifest_path(cube, *version);
            std::fs::remove_file(&path).map_err(|source| Error::Directory { path, source })?;
        }
        let mut pruned = Pruned { versions: gone.to_vec(), files: 0, bytes: 0, keep };
        for file in files {
            let path = dir.join(&file);
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(&path) {
                Ok(()) => (pruned.files, pruned.bytes) = (pruned.files + 1, pruned.bytes + bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Directory { path, source }),
            }
        }
        Ok(pruned)
    }

    /// The latest version of a cube's table read from the names of its log's commit files, without loading the
    /// table (`None` before the first commit). Cheap enough for every query.
    pub fn latest_version(&self, cube: &str) -> Result<Option<u64>> {
        let dir = self.table_dir(cube).join("_delta_log");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Directory { path: dir, source }),
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse::<u64>().ok())
            })
            .max())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Directory { path: path.to_owned(), source };
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir).map_err(io)?;
    let temporary = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    std::fs::write(&temporary, bytes).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}
