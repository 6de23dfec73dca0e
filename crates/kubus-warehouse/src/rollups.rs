//! Rollup storage: per cube and facts version, one Parquet file per rollup (named by the rollup and the
//! fingerprint of its definition) and a manifest listing them. A rollup is only ever read for the facts version
//! it was built from, so a query never combines facts of one version with a rollup of another; rollups of earlier
//! versions stay for `--as-of`. Files are written under a temporary name on this machine and then moved into place
//! (renamed into a directory, uploaded into a bucket): a reader sees a whole file or none.

use crate::{Error, Result, Warehouse};
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::config::{ParquetColumnOptions, TableParquetOptions};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext};
use serde::{Deserialize, Serialize};
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
    /// Where a file of a cube's rollups is in the warehouse.
    fn rollup_file(cube: &str, file: &str) -> String {
        format!("rollups/{cube}/{file}")
    }

    fn manifest(cube: &str, version: u64) -> String {
        Self::rollup_file(cube, &format!("v{version}.json"))
    }

    fn rollup_error(&self, rel: &str) -> impl Fn(std::io::Error) -> Error {
        let path = self.store.display(rel);
        move |source| Error::Directory { path: path.clone(), source }
    }

    /// The rollups stored for a facts version (none when none were built).
    pub fn stored_rollups(&self, cube: &str, version: u64) -> Result<Vec<StoredRollup>> {
        let rel = Self::manifest(cube, version);
        let Some(text) = self.store.read(&rel).map_err(self.rollup_error(&rel))? else { return Ok(Vec::new()) };
        serde_json::from_slice(&text).map_err(|e| self.rollup_error(&rel)(std::io::Error::other(e)))
    }

    /// Records the rollups stored for a facts version (replacing the earlier record).
    pub fn record_rollups(&self, cube: &str, version: u64, rollups: &[StoredRollup]) -> Result<()> {
        let rel = Self::manifest(cube, version);
        let text = serde_json::to_string_pretty(rollups).expect("plain data serializes");
        self.store.write(&rel, text.into_bytes()).map_err(self.rollup_error(&rel))
    }

    /// Whether the file of a stored rollup (or dictionary) is in the warehouse.
    pub fn has_rollup_file(&self, cube: &str, file: &str) -> Result<bool> {
        let rel = Self::rollup_file(cube, file);
        self.store.exists(&rel).map_err(self.rollup_error(&rel))
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
        let dir = self.work.join("staging");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Directory { path: dir.clone(), source })?;
        // A build of its own in the name: a warehouse rebuilt from scratch reaches the same version again, and a
        // reader that held the earlier file in memory must not take it for this one.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let file = format!("{name}.v{version}.{fingerprint}.{nanos:x}.parquet");
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
        let rel = Self::rollup_file(cube, &file);
        let bytes = self.store.upload(&temporary, &rel).map_err(self.rollup_error(&rel))?;
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
        if !self.has_rollup_file(cube, file)? {
            return Ok(None);
        }
        let rel = Self::rollup_file(cube, file);
        self.store.register(ctx).map_err(self.rollup_error(&rel))?;
        let read = |source| Error::Read { table: format!("{cube} dictionary {file}"), source };
        let df = ctx.read_parquet(self.store.location(&rel), ParquetReadOptions::default()).await.map_err(read)?;
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
        let rel = Self::rollup_file(cube, &stored.file);
        self.store.register(ctx).map_err(self.rollup_error(&rel))?;
        let read = |source| Error::Read { table: format!("{cube} rollup {}", stored.name), source };
        let df = ctx.read_parquet(self.store.location(&rel), ParquetReadOptions::default()).await.map_err(read)?;
        Ok(df.into_view())
    }

    /// Removes the rollups of all but the latest `keep` facts versions that have them (at least the latest is kept):
    /// their manifests first, so that no manifest names a missing file, then the files they named that no kept
    /// manifest names. A build running meanwhile writes files no earlier manifest names, and loses none. A query
    /// as of a version whose rollups are gone reads its facts.
    pub fn prune_rollups(&self, cube: &str, keep: u64) -> Result<Pruned> {
        let dir = format!("rollups/{cube}");
        let entries = self.store.list(&dir).map_err(self.rollup_error(&dir))?;
        let mut versions: Vec<u64> =
            entries.iter().filter_map(|name| name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()).collect();
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
            let rel = Self::manifest(cube, *version);
            self.store.remove(&rel).map_err(self.rollup_error(&rel))?;
        }
        let mut pruned = Pruned { versions: gone.to_vec(), files: 0, bytes: 0, keep };
        for file in files {
            let rel = Self::rollup_file(cube, &file);
            if let Some(bytes) = self.store.remove(&rel).map_err(self.rollup_error(&rel))? {
                (pruned.files, pruned.bytes) = (pruned.files + 1, pruned.bytes + bytes);
            }
        }
        Ok(pruned)
    }

    /// The latest version of a cube's table read from the names of its log's commit files, without loading the
    /// table (`None` before the first commit). Cheap enough for every query.
    pub fn latest_version(&self, cube: &str) -> Result<Option<u64>> {
        let log = format!("facts/{cube}/_delta_log");
        let entries =
            self.store.list(&log).map_err(|source| Error::Directory { path: self.store.display(&log), source })?;
        Ok(entries.iter().filter_map(|name| name.strip_suffix(".json")?.parse::<u64>().ok()).max())
    }
}
