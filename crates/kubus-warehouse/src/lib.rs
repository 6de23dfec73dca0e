//! The warehouse: one versioned Delta Lake table of facts per cube under a root directory or a prefix of an
//! S3-compatible bucket (`store.rs`), written in one atomic commit per ingest, plus the quarantine files of rejected
//! lines. Every fact row carries the name and SHA-256 of the file it came from, so that an ingest can tell a file it
//! has seen before (and a crash can never record a file without its facts). Knows cubes by name only; nothing here parses exports or plans queries.

mod adopt;
mod overlap;
mod quarantine;
mod rollups;
mod store;

pub use overlap::{Cells, Overlap};
pub use quarantine::QuarantineRow;
pub use rollups::{Pruned, StoredRollup};

use datafusion::arrow::array::{Array, ArrayRef, AsArray as _, RecordBatch, StringArray};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::ipc::writer::FileWriter;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::protocol::SaveMode;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Column holding the source file name of a fact.
pub const FILE_COLUMN: &str = "_ingest_file";
/// Column holding the SHA-256 (hex) of the source file of a fact.
pub const HASH_COLUMN: &str = "_ingest_hash";

/// The ingest lock of one cube: held by an ingest from reading which files the table holds, through staging, to
/// its commit, so that two ingests of a cube — from the CLI and from the server, or two uploads — commit one after
/// the other and each sees the other's files. An OS file lock (`flock`) on `locks/<cube>.lock`: the system releases
/// it when its holder ends, however it ends, so no stale lock outlives a killed ingest.
#[derive(Debug)]
pub struct CubeLock {
    cube: String,
    _file: std::fs::File,
}

impl CubeLock {
    /// The locked cube.
    pub fn cube(&self) -> &str {
        &self.cube
    }
}

/// Errors of the warehouse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A folder or file of the warehouse cannot be created, read or written.
    #[error("warehouse {path}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Delta Lake operation failed.
    #[error("warehouse table {table}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    /// Reading the facts through DataFusion failed.
    #[error("reading warehouse table {table}")]
    Read {
        table: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    /// The requested version does not exist.
    #[error("table {table} has no version {version} (latest is {latest})")]
    NoSuchVersion { table: String, version: u64, latest: u64 },
    /// Writing a file of the table failed.
    #[error("writing a file of table {table}")]
    Parquet {
        table: String,
        #[source]
        source: datafusion::parquet::errors::ParquetError,
    },
    /// Building the batch to write failed (an internal bug).
    #[error("preparing facts for table {table}")]
    Arrow {
        table: String,
        #[source]
        source: datafusion::arrow::error::ArrowError,
    },
    /// Two files of one ingest hold facts for the same replace key.
    #[error("{} and {} both hold facts for {key} in {table}; ingest the one that is right", .files[0], .files[1])]
    OverlappingReplace { table: String, key: String, files: [String; 2] },
    /// Facts of the ingest for cells that another file already brought: the same data delivered twice.
    #[error(
        "{table}: {first}{}. Added up, the same data would count twice: ingest only one of them, give the \
         source a replace key (`replace = [...]`) if a newer file stands for an older one, or set \
         `on_overlap = \"add\"` if its deliveries truly add",
        more_pairs(.more)
    )]
    Overlap {
        table: String,
        /// The largest overlap.
        first: Overlap,
        /// How many more pairs of files overlap.
        more: usize,
    },
    /// The warehouse's location is not one kubus can use.
    #[error("warehouse {location}: {reason}")]
    Location { location: String, reason: String },
    /// Writing a quarantine file failed.
    #[error("quarantine file {path}")]
    Quarantine {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn more_pairs(more: &usize) -> String {
    match more {
        0 => String::new(),
        1 => "; one more pair of files overlaps".to_owned(),
        n => format!("; {n} more pairs of files overlap"),
    }
}

/// Result type of the warehouse crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What commits changed in a cube's facts (see [`Warehouse::changes_since`]).
pub struct Changes {
    /// The facts added, as a table over their files (`None`: none).
    pub added: Option<Arc<dyn TableProvider>>,
    /// The facts removed (replaced), as a table over their files in the earlier version (`None`: none).
    pub removed: Option<Arc<dyn TableProvider>>,
}

/// A warehouse: in a directory, or under a prefix of a bucket.
#[derive(Debug, Clone)]
pub struct Warehouse {
    store: store::Store,
    /// This machine's folder for what is on its way into the warehouse (staged facts, uploads) and for the ingest
    /// locks: the warehouse directory itself, or one the project names for a warehouse in a bucket.
    work: PathBuf,
}

impl Warehouse {
    /// Opens (creating if needed) the warehouse in the directory `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|source| Error::Directory { path: root.to_owned(), source })?;
        let root = root.canonicalize().map_err(|source| Error::Directory { path: root.to_owned(), source })?;
        Ok(Warehouse { store: store::Store::Dir(root.clone()), work: root })
    }

    /// Opens the warehouse under `location`, `s3://bucket/prefix`, reached with `options` (settings of the S3
    /// client: `endpoint`, `region`, `allow_http`, credentials; see `store.rs`) over the `AWS_*` environment
    /// variables. `work` is this machine's folder for staged facts, uploads and ingest locks (created if needed).
    pub fn open_bucket(location: &str, options: &BTreeMap<String, String>, work: &Path) -> Result<Self> {
        let store = store::Store::bucket(location, options)
            .map_err(|reason| Error::Location { location: location.to_owned(), reason })?;
        std::fs::create_dir_all(work).map_err(|source| Error::Directory { path: work.to_owned(), source })?;
        let work = work.canonicalize().map_err(|source| Error::Directory { path: work.to_owned(), source })?;
        Ok(Warehouse { store, work })
    }

    /// The warehouse directory, `None` for a warehouse in a bucket.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.store {
            store::Store::Dir(dir) => Some(dir),
            store::Store::Bucket(_) => None,
        }
    }

    /// Where the warehouse is: its directory's `file://` URL, or `s3://bucket/prefix/`.
    pub fn location(&self) -> url::Url {
        self.store.url()
    }

    /// Makes the warehouse's bucket readable to DataFusion plans run in `runtime` (a cluster process's, which reads
    /// the facts' files itself); nothing to do for a warehouse on a disk.
    pub fn register_object_store(&self, runtime: &datafusion::execution::runtime_env::RuntimeEnv) -> Result<()> {
        let location = self.location().to_string();
        self.store.register_in(runtime).map_err(|e| Error::Location { location, reason: e.to_string() })
    }

    /// This machine's folder for staged facts, uploads and ingest locks (see [`Warehouse::open_bucket`]).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The names of what is at the warehouse's top level.
    pub fn entries(&self) -> Result<Vec<String>> {
        self.store.list("").map_err(|source| Error::Directory { path: self.store.display(""), source })
    }

    /// Removes everything in the warehouse.
    pub fn remove_all(&self) -> Result<()> {
        self.store.remove_all().map_err(|source| Error::Directory { path: self.store.display(""), source })
    }

    /// The content of the warehouse's file `name` (at its top level), `None` where there is none.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let read = self.store.read(name).map_err(|source| Error::Directory { path: self.store.display(name), source });
        Ok(read?.map(|bytes| bytes.to_vec()))
    }

    /// Writes the warehouse's file `name` whole (readers see the old content or the new).
    pub fn write_file(&self, name: &str, bytes: Vec<u8>) -> Result<()> {
        self.store.write(name, bytes).map_err(|source| Error::Directory { path: self.store.display(name), source })
    }

    /// Where the warehouse's file `name` is, to name in a message.
    pub fn file_location(&self, name: &str) -> PathBuf {
        self.store.display(name)
    }

    /// The URL of a cube's fact table.
    fn table_url(&self, cube: &str) -> url::Url {
        self.store.url().join(&format!("facts/{cube}/")).expect("a cube's name is a path segment")
    }

    async fn table(&self, cube: &str) -> Result<Option<DeltaTable>> {
        let delta = |source| Error::Delta { table: cube.to_owned(), source };
        let log = format!("facts/{cube}/_delta_log");
        let committed =
            self.store.list(&log).map_err(|source| Error::Directory { path: self.store.display(&log), source })?;
        if committed.is_empty() {
            return Ok(None);
        }
        let table = DeltaTable::try_from_url_with_storage_options(self.table_url(cube), self.store.delta_options())
            .await
            .map_err(delta)?;
        Ok(table.version().is_some().then_some(table))
    }

    /// The latest version of a cube's table, `None` before its first commit.
    pub async fn version(&self, cube: &str) -> Result<Option<u64>> {
        Ok(self.table(cube).await?.and_then(|t| t.version()))
    }

    /// A DataFusion table provider over a cube's facts at `as_of` (or the latest version), registered for
    /// reading in `ctx`; `None` before the first commit. Returns the version read.
    pub async fn facts(
        &self,
        ctx: &SessionContext,
        cube: &str,
        as_of: Option<u64>,
    ) -> Result<Option<(Arc<dyn TableProvider>, u64)>> {
        Ok(self.facts_sized(ctx, cube, as_of).await?.map(|(provider, version, _)| (provider, version)))
    }

    /// [`Warehouse::facts`] with the size of the version's files in bytes.
    pub async fn facts_sized(
        &self,
        ctx: &SessionContext,
        cube: &str,
        as_of: Option<u64>,
    ) -> Result<Option<(Arc<dyn TableProvider>, u64, u64)>> {
        let delta = |source| Error::Delta { table: cube.to_owned(), source };
        let Some(mut table) = self.table(cube).await? else { return Ok(None) };
        let latest = table.version().unwrap_or_default();
        if let Some(v) = as_of {
            if v > latest {
                return Err(Error::NoSuchVersion { table: cube.to_owned(), version: v, latest });
            }
            table.load_version(v).await.map_err(delta)?;
        }
        table.update_datafusion_session(&ctx.state()).map_err(delta)?;
        let read = |source| Error::Read { table: cube.to_owned(), source };
        let provider = table.table_provider().await.map_err(read)?;
        let bytes = table.snapshot().map_err(delta)?.log_data().iter().map(|f| f.size().max(0) as u64).sum();
        let provider = match plain_files(&table).map_err(delta)? {
            Some(files) => {
                let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
                let config = ListingTableConfig::new_with_multi_paths(files)
                    .with_listing_options(options)
                    .with_schema(provider.schema());
                Arc::new(ListingTable::try_new(config).map_err(read)?)
            }
            None => provider,
        };
        Ok(Some((provider, as_of.unwrap_or(latest), bytes)))
    }

    /// What the commits after version `since` up to `version` changed: the facts they added and those they removed
    /// (replaced), each as a table over their files only; `None` where one of them did more than add and remove
    /// files (changed the table's schema), or where a commit's log entry is gone: then only all the facts tell.
    pub async fn changes_since(
        &self,
        ctx: &SessionContext,
        cube: &str,
        since: u64,
        version: u64,
    ) -> Result<Option<Changes>> {
        let delta = |source| Error::Delta { table: cube.to_owned(), source };
        let read = |source| Error::Read { table: cube.to_owned(), source };
        let Some(mut table) = self.table(cube).await? else { return Ok(None) };
        if since >= version || table.version().is_none_or(|latest| latest < version) {
            return Ok(None);
        }
        let mut adds: Vec<deltalake::kernel::Add> = Vec::new();
        let mut removes: BTreeSet<String> = BTreeSet::new();
        for v in since + 1..=version {
            let Some(bytes) = table.log_store().read_commit_entry(v).await.map_err(delta)? else { return Ok(None) };
            for action in deltalake::logstore::get_actions(v, &bytes).map_err(delta)? {
                match action {
                    deltalake::kernel::Action::Add(add) => adds.push(add),
                    // A file added since and removed again was never in either version.
                    deltalake::kernel::Action::Remove(remove) => {
                        match adds.iter().position(|a| a.path == remove.path) {
                            Some(at) => {
                                adds.remove(at);
                            }
                            None => {
                                removes.insert(remove.path);
                            }
                        }
                    }
                    deltalake::kernel::Action::CommitInfo(_) => {}
                    _ => return Ok(None),
                }
            }
        }
        table.update_datafusion_session(&ctx.state()).map_err(delta)?;
        let removed = match removes.is_empty() {
            true => None,
            false => {
                table.load_version(since).await.map_err(delta)?;
                Some(table.table_provider().with_file_paths(removes).await.map_err(read)?)
            }
        };
        table.load_version(version).await.map_err(delta)?;
        let added = match adds.is_empty() {
            true => None,
            false => Some(table.table_provider().with_adds(adds).await.map_err(read)?),
        };
        Ok(Some(Changes { added, removed }))
    }

    /// The SHA-256 hashes and names of every file whose facts are in the latest version of a cube's table. The
    /// table's files that kubus wrote say so in their `add` actions ([`adopt::FILES_TAG`]); only the others —
    /// written by Delta's own write (a replacement), or before the tag existed — are read.
    pub async fn ingested_files(&self, cube: &str) -> Result<BTreeSet<(String, String)>> {
        let delta = |source| Error::Delta { table: cube.to_owned(), source };
        let read = |source| Error::Read { table: cube.to_owned(), source };
        let Some(table) = self.table(cube).await? else { return Ok(BTreeSet::new()) };
        let mut files = BTreeSet::new();
        let mut unread = Vec::new();
        for file in table.snapshot().map_err(delta)?.log_data().iter() {
            // A file's tags are only to be had from its `add` action in deltalake 1.1.
            #[allow(deprecated)]
            let tags = file.add_action().tags.unwrap_or_default();
            let listed = tags.get(adopt::FILES_TAG).cloned().flatten();
            let pairs = listed.and_then(|json| serde_json::from_str::<Vec<(String, String)>>(&json).ok());
            match pairs {
                // A deletion vector would hide some of the file's facts.
                Some(pairs) if file.deletion_vector_descriptor().is_none() => files.extend(pairs),
                _ => unread.push(file.path().into_owned()),
            }
        }
        if unread.is_empty() {
            return Ok(files);
        }
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).map_err(delta)?;
        let provider = table.table_provider().with_file_paths(unread).await.map_err(read)?;
        let batches = ctx
            .read_table(provider)
            .and_then(|df| df.select(vec![col(HASH_COLUMN), col(FILE_COLUMN)]))
            .and_then(|df| df.distinct())
            .map_err(read)?
            .collect()
            .await
            .map_err(read)?;
        for batch in batches {
            let text = |i: usize| {
                datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)
                    .map_err(|source| Error::Arrow { table: cube.to_owned(), source })
            };
            let (hashes, names) = (text(0)?, text(1)?);
            let pairs = hashes.as_string::<i32>().iter().zip(names.as_string::<i32>().iter());
            files.extend(pairs.filter_map(|(h, n)| Some((h?.to_owned(), n?.to_owned()))));
        }
        Ok(files)
    }

    /// Takes the cube's ingest lock if no one holds it (`None`: another ingest of the cube, in this process or
    /// another, holds it). See [`CubeLock`].
    pub fn try_lock(&self, cube: &str) -> Result<Option<CubeLock>> {
        let dir = self.work.join("locks");
        let io = |source| Error::Directory { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{cube}.lock")))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(CubeLock { cube: cube.to_owned(), _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Starts staging the facts of one ingest into the locked cube: they go to a spill file under `warehouse/staging`
    /// as they come, so that no file's facts need to fit in memory, and reach the table in one commit.
    /// `replace` is the source's replace key (empty: append). `cluster` is the column (the period) by whose values
    /// the facts are staged apart, so that the commit writes them in the order of that column without sorting:
    /// then a query cut on a period reads only the row groups of its periods (`benches/RESULTS.md`, "Layout of
    /// the facts"). With `overlap`, the commit refuses facts for cells that another file already brought (see
    /// [`Cells`]); without, the facts are added to whatever the cells hold.
    pub fn stage(
        &self,
        lock: &CubeLock,
        facts: SchemaRef,
        replace: &[String],
        cluster: Option<&str>,
        overlap: Option<Cells>,
    ) -> Result<Staging> {
        let cube = lock.cube.as_str();
        let dir = self.work.join("staging");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Directory { path: dir.clone(), source })?;
        // Whatever of this cube is in staging was left by an ingest that died before its commit: the cube's lock,
        // held here, is held by every ingest from staging to commit.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&format!("{cube}.")) {
                    let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
                }
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = dir.join(format!("{cube}.{}.{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| Error::Directory { path: path.clone(), source })?;
        // Facts may come with dictionaries (of a dimension's keys): they are spilled and encoded as they are, and
        // are text in the table.
        let text = |f: &Field| match f.data_type() {
            DataType::Dictionary(_, value) => f.clone().with_data_type(value.as_ref().clone()),
            _ => f.clone(),
        };
        let mut table: Vec<Field> = facts.fields().iter().map(|f| text(f)).collect();
        table.push(Field::new(FILE_COLUMN, DataType::Utf8, false));
        table.push(Field::new(HASH_COLUMN, DataType::Utf8, false));
        let mut spilled: Vec<Field> = facts.fields().iter().map(|f| f.as_ref().clone()).collect();
        spilled.push(Field::new(FILE_COLUMN, DataType::Int32, false));
        Ok(Staging {
            cube: cube.to_owned(),
            prefix: format!("part-{}-{nanos}", std::process::id()),
            path,
            schema: Arc::new(Schema::new(table)),
            spilled: Arc::new(Schema::new(spilled)),
            provenance: Provenance::default(),
            cluster: cluster.map(str::to_owned),
            plain: Vec::new(),
            buckets: BTreeMap::new(),
            replace: replace.to_vec(),
            overlap,
            owners: BTreeMap::new(),
            log: Vec::new(),
            rows: 0,
        })
    }

    /// Commits what was staged: appended, or — with a replace key — replacing every fact already in the table
    /// whose key occurs among the staged facts, in the same commit; earlier versions stay readable. Readers see
    /// all staged files or none. Unless earlier facts are replaced (Delta's `replaceWhere` rewrites them), the
    /// staged facts are encoded on all cores into files of the table ([`adopt`]) and added in one commit.
    pub async fn commit(&self, staging: Staging) -> Result<Commit> {
        self.finish(staging, true).await
    }

    /// What [`commit`](Self::commit) would do with what was staged, without writing: the same refusals (facts
    /// for cells another file already brought), and the earlier files it would replace; the version stays.
    pub async fn check(&self, staging: Staging) -> Result<Commit> {
        self.finish(staging, false).await
    }

    async fn finish(&self, mut staging: Staging, write: bool) -> Result<Commit> {
        let cube = staging.cube.clone();
        let arrow = |source| Error::Arrow { table: cube.clone(), source };
        // The periods of the new facts, when each has its own bucket: only facts of these can be the same cells.
        let periods: Option<Vec<String>> = staging.cluster.as_ref().and(
            staging
                .buckets
                .keys()
                .map(|b| match b {
                    Bucket::Period(p) => Some(p.clone()),
                    Bucket::Rest => None,
                })
                .collect(),
        );
        let mut files = Vec::new();
        for (_, spill) in std::mem::take(&mut staging.buckets) {
            spill
                .writer
                .into_inner()
                .map_err(arrow)?
                .flush()
                .map_err(|source| Error::Directory { path: spill.path.clone(), source })?;
            files.push(adopt::Spilled { path: spill.path, batches: spill.batches });
        }
        if staging.rows == 0 {
            return Ok(Commit { version: self.version(&cube).await?, replaced: Vec::new() });
        }
        let keys: BTreeSet<Vec<String>> = staging.owners.keys().cloned().collect();
        let predicate = replace_predicate(&staging.replace, &keys);
        let existing = self.table(&cube).await?;
        let replaced = match (&predicate, &existing) {
            (Some(p), Some(_)) => self.replaced_files(&cube, p.clone()).await?,
            _ => Vec::new(),
        };
        if let Some(cells) = &staging.overlap {
            let found = self.overlaps(&staging, &files, predicate.as_ref(), periods, cells).await?;
            let mut found = found.into_iter();
            if let Some(first) = found.next() {
                return Err(Error::Overlap { table: cube, first, more: found.count() });
            }
        }
        if !write {
            return Ok(Commit { version: self.version(&cube).await?, replaced });
        }
        let delta = |source| Error::Delta { table: cube.clone(), source };
        let properties = deltalake::kernel::transaction::CommitProperties::default()
            .with_metadata([("kubus.ingest".to_owned(), serde_json::Value::Array(staging.log.clone()))]);
        let schema: deltalake::kernel::StructType = {
            use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
            staging.schema.as_ref().try_into_kernel().map_err(|e| delta(e.into()))?
        };
        // A cube changed since its table was written goes through Delta's own write, which says how they differ.
        let same_schema = existing.as_ref().is_none_or(|t| t.snapshot().is_ok_and(|s| s.schema().as_ref() == &schema));
        let plain: Vec<&str> = staging.plain.iter().map(String::as_str).collect();
        let version = match existing {
            Some(table) if !replaced.is_empty() || !same_schema => {
                let read = |source| Error::Read { table: cube.clone(), source };
                // The write plan runs in a Delta-aware session (it plans Delta's own nodes).
                let ctx = deltalake::delta_datafusion::create_session().into_inner();
                let parquet = ctx.state().config_options().execution.parquet.into_writer_properties_builder();
                let writing = adopt::plainly(parquet.map_err(read)?, &plain).build();
                let plan = in_order(
                    staging.schema.clone(),
                    files.into_iter().map(|f| f.path).collect(),
                    staging.provenance.clone(),
                )
                .map_err(read)?;
                let write = table
                    .write(Vec::new())
                    .with_input_plan(plan)
                    .with_session_state(Arc::new(ctx.state()))
                    .with_writer_properties(writing)
                    .with_commit_properties(properties);
                let write = match predicate {
                    Some(p) => write.with_save_mode(SaveMode::Overwrite).with_replace_where(p),
                    None => write.with_save_mode(SaveMode::Append),
                };
                write.await.map_err(delta)?.version()
            }
            existing => {
                let bounded: Vec<&str> = staging.cluster.iter().chain(&staging.replace).map(String::as_str).collect();
                let encoded = Provenance::encoded(&staging.spilled);
                let writing = adopt::properties(&encoded, &bounded, &plain);
                let written = adopt::encode(
                    &cube,
                    &files,
                    &staging.provenance,
                    &encoded,
                    &writing,
                    &staging.path,
                    &staging.prefix,
                )?;
                // Into the table's directory only once complete: a crash while encoding leaves them in staging,
                // which the next ingest of the cube clears; until the commit names them, readers do not see them.
                adopt::move_into(&written, &staging.path, &self.store, &format!("facts/{cube}"))?;
                let adds: Vec<_> = written.iter().map(adopt::add).collect();
                let append = |table: DeltaTable, adds: Vec<deltalake::kernel::Action>| {
                    let properties = properties.clone();
                    async move {
                        let operation = deltalake::protocol::DeltaOperation::Write {
                            mode: SaveMode::Append,
                            partition_by: None,
                            predicate: None,
                        };
                        let commit = deltalake::kernel::transaction::CommitBuilder::from(properties)
                            .with_actions(adds)
                            .build(Some(table.snapshot()?), table.log_store(), operation)
                            .await?;
                        Ok::<_, deltalake::DeltaTableError>(Some(commit.version() as u64))
                    }
                };
                match existing {
                    Some(table) => append(table, adds).await.map_err(delta)?,
                    None => {
                        let created = deltalake::operations::create::CreateBuilder::new()
                            .with_location(self.table_url(&cube).to_string())
                            .with_storage_options(self.store.delta_options())
                            .with_columns(schema.fields().cloned())
                            .with_actions(adds.clone())
                            .with_commit_properties(properties.clone())
                            .await;
                        match created {
                            Ok(table) => table.version(),
                            // Another writer (on another machine: the cube's lock is this machine's) created the
                            // table first: these facts are appended to it.
                            Err(e) => match self.table(&cube).await? {
                                Some(table) => append(table, adds).await.map_err(delta)?,
                                None => return Err(delta(e)),
                            },
                        }
                    }
                }
            }
        };
        Ok(Commit { version, replaced })
    }

    /// The overlaps of the staged facts (see [`Cells`]) with the facts of the table that the commit keeps (those
    /// `replaced` does not match, of the new facts' `periods` where they are known), and among the ingest's files.
    async fn overlaps(
        &self,
        staging: &Staging,
        files: &[adopt::Spilled],
        replaced: Option<&Expr>,
        periods: Option<Vec<String>>,
        cells: &Cells,
    ) -> Result<Vec<Overlap>> {
        let cube = staging.cube.as_str();
        let read = |source| Error::Read { table: cube.to_owned(), source };
        let ctx = SessionContext::new();
        let paths: Vec<PathBuf> = files.iter().map(|f| f.path.clone()).collect();
        let new = || {
            let plan = in_order(staging.schema.clone(), paths.clone(), staging.provenance.clone())?;
            Ok(datafusion::dataframe::DataFrame::new(ctx.state(), plan))
        };
        let old = match self.facts(&ctx, cube, None).await? {
            // A table written before the cube had one of the cell's columns holds none of its cells.
            Some((provider, _))
                if cells
                    .columns
                    .iter()
                    .chain(&cells.unit)
                    .chain(&cells.values)
                    .all(|c| provider.schema().index_of(c).is_ok()) =>
            {
                let mut old = ctx.read_table(provider).map_err(read)?;
                if let Some(replaced) = replaced {
                    old = old.filter(datafusion::logical_expr::not(replaced.clone())).map_err(read)?;
                }
                if let (Some(cluster), Some(periods)) = (&staging.cluster, periods) {
                    let periods = periods.into_iter().map(lit).collect();
                    old = old.filter(datafusion::prelude::ident(cluster).in_list(periods, false)).map_err(read)?;
                }
                Some(old)
            }
            _ => None,
        };
        overlap::overlaps(new, old, staging.provenance.files() > 1, cells).await.map_err(read)
    }

    /// Per file already in the table: how many of its facts match `predicate`, and whether any do not.
    async fn replaced_files(&self, cube: &str, predicate: Expr) -> Result<Vec<Replaced>> {
        let ctx = SessionContext::new();
        let Some((provider, _)) = self.facts(&ctx, cube, None).await? else { return Ok(Vec::new()) };
        let read = |source| Error::Read { table: cube.to_owned(), source };
        let per_file = |filter: Expr| async {
            let batches = ctx
                .read_table(provider.clone())
                .and_then(|df| df.filter(filter))
                .and_then(|df| df.aggregate(vec![col(FILE_COLUMN)], vec![count(lit(1)).alias("facts")]))
                .map_err(read)?
                .collect()
                .await
                .map_err(read)?;
            let mut facts = BTreeMap::new();
            for batch in batches {
                let files = datafusion::arrow::compute::cast(batch.column(0), &DataType::Utf8)
                    .map_err(|source| Error::Arrow { table: cube.to_owned(), source })?;
                let counts = batch.column(1).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                facts.extend(
                    files
                        .as_string::<i32>()
                        .iter()
                        .zip(counts.values())
                        .filter_map(|(f, &n)| Some((f?.to_owned(), n as usize))),
                );
            }
            Ok::<_, Error>(facts)
        };
        // The replaced facts, per file: the predicate names periods or replace-key values, whose statistics let
        // the scan skip the other row groups. Then whether those files keep any other fact.
        let hit = per_file(predicate.clone()).await?;
        if hit.is_empty() {
            return Ok(Vec::new());
        }
        let files = hit.keys().map(|f| lit(f.as_str())).collect();
        let kept = per_file(col(FILE_COLUMN).in_list(files, false).and(predicate.is_not_true())).await?;
        Ok(hit
            .into_iter()
            .map(|(file, facts)| Replaced { whole_file: !kept.contains_key(&file), file, facts })
            .collect())
    }
}

/// What a commit did.
#[derive(Debug, Clone, Default)]
pub struct Commit {
    /// The table's version after the commit (`None`: still no facts).
    pub version: Option<u64>,
    /// Earlier files whose facts were replaced.
    pub replaced: Vec<Replaced>,
}

/// Facts of an earlier file that a replacing commit removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// The earlier file's name.
    pub file: String,
    /// How many of its facts were replaced.
    pub facts: usize,
    /// Whether no fact of that file remains.
    pub whole_file: bool,
}

/// At most this many periods are staged apart; facts of further periods share one more spill file.
const MAX_BUCKETS: usize = 256;

/// Where a staged fact goes: the spill file of its period, or the one for everything else (no period column,
/// a null period, or periods beyond [`MAX_BUCKETS`]), which is written last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bucket {
    Period(String),
    Rest,
}

/// The staged spill files in commit order, read one after the other as one stream, in batches of about 64k rows
/// (a period's facts arrive in slices of the ingest's batches). One stream: split into ranges, DataFusion would
/// fetch each range's batches at once, and memory would grow with the ingest; and the write would interleave
/// ranges, losing the order.
fn in_order(
    schema: SchemaRef,
    files: Vec<PathBuf>,
    provenance: Provenance,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    use datafusion::arrow::ipc::reader::FileReader;
    use datafusion::catalog::streaming::StreamingTable;
    use datafusion::physical_plan::SendableRecordBatchStream;
    use datafusion::physical_plan::stream::RecordBatchReceiverStream;
    use datafusion::physical_plan::streaming::PartitionStream;
    #[derive(Debug)]
    struct Files(SchemaRef, Vec<PathBuf>, Provenance);
    impl PartitionStream for Files {
        fn schema(&self) -> &SchemaRef {
            &self.0
        }
        fn execute(&self, _ctx: Arc<datafusion::execution::TaskContext>) -> SendableRecordBatchStream {
            let mut builder = RecordBatchReceiverStream::builder(self.0.clone(), 2);
            let (tx, schema, files, provenance) = (builder.tx(), self.0.clone(), self.1.clone(), self.2.clone());
            builder.spawn_blocking(move || {
                let mut pending: Vec<RecordBatch> = Vec::new();
                let mut rows = 0;
                let send = |pending: &mut Vec<RecordBatch>| -> datafusion::error::Result<bool> {
                    // The spill files' file numbers become the table's name and hash columns here.
                    let spilled = datafusion::arrow::compute::concat_batches(&pending[0].schema(), pending.iter())?;
                    let batch = provenance.restore(&spilled, &schema)?;
                    pending.clear();
                    Ok(tx.blocking_send(Ok(batch)).is_ok())
                };
                for file in files {
                    let reader = std::fs::File::open(&file).map_err(datafusion::error::DataFusionError::IoError)?;
                    for batch in FileReader::try_new(std::io::BufReader::new(reader), None)? {
                        let batch = batch?;
                        rows += batch.num_rows();
                        pending.push(batch);
                        if rows >= 1 << 16 {
                            rows = 0;
                            if !send(&mut pending)? {
                                return Ok(());
                            }
                        }
                    }
                }
                if !pending.is_empty() {
                    send(&mut pending)?;
                }
                Ok(())
            });
            builder.build()
        }
    }
    let table = StreamingTable::try_new(schema.clone(), vec![Arc::new(Files(schema, files, provenance))])?;
    datafusion::logical_expr::LogicalPlanBuilder::scan(
        "staged",
        datafusion::datasource::provider_as_source(Arc::new(table)),
        None,
    )?
    .build()
}

/// One bucket's spill file, being written, and the rows of each of its batches.
struct Spill {
    path: PathBuf,
    writer: FileWriter<std::io::BufWriter<std::fs::File>>,
    batches: Vec<usize>,
}

/// The facts of one ingest on their way into a table (see [`Warehouse::stage`]): spill files in a directory of
/// `warehouse/staging`, one per period. Dropped without a commit, it removes them.
pub struct Staging {
    cube: String,
    path: PathBuf,
    /// The table's new files are named with this, so that files of different ingests never clash.
    prefix: String,
    /// The facts' schema with the provenance columns.
    schema: SchemaRef,
    /// The same in the spill files, where the provenance columns are one column of file numbers.
    spilled: SchemaRef,
    /// The files of the ingest, by number.
    provenance: Provenance,
    /// The period column the facts are staged apart by.
    cluster: Option<String>,
    /// Columns of numbers with about as many values as facts, written plain (see [`Staging::plain`]).
    plain: Vec<String>,
    /// The spill file of each bucket, in commit order.
    buckets: BTreeMap<Bucket, Spill>,
    replace: Vec<String>,
    /// What the commit compares to refuse the same data twice; `None`: the facts add.
    overlap: Option<Cells>,
    /// Replace-key values seen so far, and the file that brought each.
    owners: BTreeMap<Vec<String>, String>,
    log: Vec<serde_json::Value>,
    rows: usize,
}

impl Staging {
    /// Has the table's files hold `columns` plain and uncompressed: numbers that are about as many as the facts,
    /// such as record keys (up to 65,536 values in a row group of some 70,000 facts). A dictionary per row group
    /// would be as large as the column, and every query counting them would decode it (and Snappy) rather than
    /// read four bytes a fact.
    pub fn plain(mut self, columns: &[&str]) -> Self {
        self.plain = columns.iter().map(|c| (*c).to_owned()).collect();
        self
    }

    /// Stages a batch of facts of `file` (SHA-256 `sha256`). Two files of one ingest with facts for the same
    /// replace key are refused: both would stay, and the user must pick the right one.
    pub fn add(&mut self, file: &str, sha256: &str, facts: &RecordBatch) -> Result<()> {
        let cube = self.cube.clone();
        let arrow = |source| Error::Arrow { table: cube.clone(), source };
        if facts.num_rows() == 0 {
            return Ok(());
        }
        if !self.replace.is_empty() {
            for key in key_tuples(std::slice::from_ref(facts), &self.replace).map_err(arrow)? {
                match self.owners.get(&key) {
                    Some(other) if other != file => {
                        return Err(Error::OverlappingReplace {
                            table: self.cube.clone(),
                            key: self
                                .replace
                                .iter()
                                .zip(&key)
                                .map(|(c, v)| format!("{c}={v}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            files: [other.clone(), file.to_owned()],
                        });
                    }
                    Some(_) => {}
                    None => {
                        self.owners.insert(key, file.to_owned());
                    }
                }
            }
        }
        let number = self.provenance.number(file, sha256);
        let batch = with_provenance(facts, &self.spilled, number).map_err(arrow)?;
        self.rows += facts.num_rows();
        let Some(column) = &self.cluster else { return self.write(Bucket::Rest, &batch) };
        let runs = period_runs(batch.column(batch.schema().index_of(column).map_err(arrow)?)).map_err(arrow)?;
        if let [(period, _)] = &runs[..] {
            // One period, as in a monthly export: the batch goes to its bucket as it is.
            return self.write(period.as_deref().map_or(Bucket::Rest, |p| self.bucket(p)), &batch);
        }
        // One take puts the rows in period order; each period's rows are then a slice of it.
        let order: Vec<u32> = runs.iter().flat_map(|(_, rows)| rows.iter().copied()).collect();
        let sorted =
            datafusion::arrow::compute::take_record_batch(&batch, &datafusion::arrow::array::UInt32Array::from(order))
                .map_err(arrow)?;
        let mut offset = 0;
        for (period, rows) in runs {
            self.write(period.as_deref().map_or(Bucket::Rest, |p| self.bucket(p)), &sorted.slice(offset, rows.len()))?;
            offset += rows.len();
        }
        Ok(())
    }

    /// The bucket of a period: its own while fewer than [`MAX_BUCKETS`] are open, else the rest.
    fn bucket(&self, period: &str) -> Bucket {
        let bucket = Bucket::Period(period.to_owned());
        if self.buckets.len() < MAX_BUCKETS || self.buckets.contains_key(&bucket) { bucket } else { Bucket::Rest }
    }

    /// Appends facts to a bucket's spill file, opened on first use.
    fn write(&mut self, bucket: Bucket, batch: &RecordBatch) -> Result<()> {
        let arrow = |source| Error::Arrow { table: self.cube.clone(), source };
        if !self.buckets.contains_key(&bucket) {
            let path = self.path.join(format!("{}.arrow", self.buckets.len()));
            let file =
                std::fs::File::create(&path).map_err(|source| Error::Directory { path: path.clone(), source })?;
            let writer = FileWriter::try_new(std::io::BufWriter::new(file), &self.spilled).map_err(arrow)?;
            self.buckets.insert(bucket.clone(), Spill { path, writer, batches: Vec::new() });
        }
        let spill = self.buckets.get_mut(&bucket).expect("inserted above");
        spill.batches.push(batch.num_rows());
        spill.writer.write(batch).map_err(arrow)
    }

    /// Records a file's entry in the commit's metadata (file, SHA-256, facts).
    pub fn log_file(&mut self, file: &str, sha256: &str, facts: usize) {
        self.log.push(serde_json::json!({ "file": file, "sha256": sha256, "facts": facts }));
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A period (`None`: none) and its rows in a batch.
type Run = (Option<String>, Vec<u32>);

/// The rows of each period (`None`: no period) in the order the periods first occur. A dictionary of periods is
/// read by its numbers, without a text per row.
fn period_runs(periods: &ArrayRef) -> Result<Vec<Run>, datafusion::arrow::error::ArrowError> {
    use datafusion::arrow::datatypes::Int32Type;
    let mut runs: Vec<Run> = Vec::new();
    let mut run_of_null = None;
    if let Some(dictionary) = periods.as_dictionary_opt::<Int32Type>() {
        let texts = datafusion::arrow::compute::cast(dictionary.values(), &DataType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let mut run_of = vec![usize::MAX; texts.len()];
        for (row, key) in dictionary.keys().iter().enumerate() {
            let run = match key {
                Some(key) => &mut run_of[key as usize],
                None => run_of_null.get_or_insert(usize::MAX),
            };
            if *run == usize::MAX {
                *run = runs.len();
                runs.push((key.map(|k| texts.value(k as usize).to_owned()), Vec::new()));
            }
            runs[*run].1.push(row as u32);
        }
        return Ok(runs);
    }
    let texts = datafusion::arrow::compute::cast(periods, &DataType::Utf8)?;
    let mut index: datafusion::common::HashMap<Option<&str>, usize> = datafusion::common::HashMap::default();
    for (row, period) in texts.as_string::<i32>().iter().enumerate() {
        let run = *index.entry(period).or_insert_with(|| {
            runs.push((period.map(str::to_owned), Vec::new()));
            runs.len() - 1
        });
        runs[run].1.push(row as u32);
    }
    Ok(runs)
}

/// The distinct values of the key columns among the new facts.
fn key_tuples(
    batches: &[RecordBatch],
    columns: &[String],
) -> Result<BTreeSet<Vec<String>>, datafusion::arrow::error::ArrowError> {
    let mut keys = BTreeSet::new();
    for batch in batches {
        let arrays = columns
            .iter()
            .map(|c| {
                let idx = batch.schema().index_of(c)?;
                datafusion::arrow::compute::cast(batch.column(idx), &DataType::Utf8)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let strings: Vec<&StringArray> =
            arrays.iter().map(|a| a.as_any().downcast_ref::<StringArray>().expect("cast to Utf8")).collect();
        for i in 0..batch.num_rows() {
            keys.insert(strings.iter().map(|s| s.value(i).to_owned()).collect());
        }
    }
    Ok(keys)
}

/// `key IN (…)` for one column; a disjunction of conjunctions for several.
/// The Parquet files of a table's loaded version, where they hold its rows as they are: no partition columns,
/// no column mapping, no deletion vectors — as kubus writes its tables. DataFusion's own Parquet scan then reads
/// them: the Delta scan also tags every row with its file (a dictionary of file ids built per batch, then split
/// into runs again), which took a sixth of a count by district over 10M facts. `None` for any other table, and
/// for one without files; the Delta scan reads those.
fn plain_files(table: &DeltaTable) -> deltalake::DeltaResult<Option<Vec<ListingTableUrl>>> {
    let snapshot = table.snapshot()?;
    let mapped = snapshot.metadata().configuration().get("delta.columnMapping.mode").is_some_and(|m| m != "none");
    if mapped || !snapshot.metadata().partition_columns().is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        if file.deletion_vector_descriptor().is_some() {
            return Ok(None);
        }
        let Ok(url) = table.table_url().join(&file.path()) else { return Ok(None) };
        let Ok(url) = ListingTableUrl::parse(url.as_str()) else { return Ok(None) };
        files.push(url);
    }
    Ok((!files.is_empty()).then_some(files))
}

fn replace_predicate(columns: &[String], keys: &BTreeSet<Vec<String>>) -> Option<Expr> {
    if columns.is_empty() || keys.is_empty() {
        return None;
    }
    if let [column] = columns {
        return Some(col(column.as_str()).in_list(keys.iter().map(|k| lit(k[0].clone())).collect(), false));
    }
    keys.iter()
        .map(|k| {
            columns
                .iter()
                .zip(k)
                .map(|(c, v)| col(c.as_str()).eq(lit(v.clone())))
                .reduce(Expr::and)
                .expect("at least one column")
        })
        .reduce(Expr::or)
}

/// The files of one ingest, by number: the spill files carry a fact's file number (four bytes, where the name
/// and the SHA-256 would take some ninety), the table its file's name and hash.
#[derive(Debug, Clone, Default)]
pub(crate) struct Provenance {
    names: Vec<String>,
    hashes: Vec<String>,
}

impl Provenance {
    /// How many files there are.
    fn files(&self) -> usize {
        self.names.len()
    }

    /// The hash and name of the file numbered `number`.
    fn file(&self, number: usize) -> (String, String) {
        (self.hashes[number].clone(), self.names[number].clone())
    }

    /// The number of a file, given on first sight.
    fn number(&mut self, file: &str, sha256: &str) -> i32 {
        let known = (0..self.names.len()).rev().find(|&i| self.names[i] == file && self.hashes[i] == sha256);
        known.unwrap_or_else(|| {
            self.names.push(file.to_owned());
            self.hashes.push(sha256.to_owned());
            self.names.len() - 1
        }) as i32
    }

    /// A spilled batch in `schema` (the table's, or that of [`Provenance::encoded`]): its last column, the file
    /// number, becomes the file's name and hash, as text or as dictionaries keyed by the file number; the other
    /// columns are cast where `schema` wants text for a dictionary.
    pub(crate) fn restore(
        &self,
        spilled: &RecordBatch,
        schema: &SchemaRef,
    ) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        use datafusion::arrow::array::DictionaryArray;
        use datafusion::arrow::datatypes::Int32Type;
        let n = spilled.num_columns();
        let numbers = spilled.column(n - 1);
        let mut columns = Vec::with_capacity(n + 1);
        for (column, field) in spilled.columns()[..n - 1].iter().zip(schema.fields()) {
            columns.push(if column.data_type() == field.data_type() {
                column.clone()
            } else {
                datafusion::arrow::compute::cast(column, field.data_type())?
            });
        }
        for values in [&self.names, &self.hashes] {
            let values: ArrayRef = Arc::new(StringArray::from(values.clone()));
            columns.push(match schema.field(columns.len()).data_type() {
                DataType::Dictionary(..) => {
                    Arc::new(DictionaryArray::try_new(numbers.as_primitive::<Int32Type>().clone(), values)?)
                }
                _ => datafusion::arrow::compute::take(&values, numbers, None)?,
            });
        }
        RecordBatch::try_new(schema.clone(), columns)
    }

    /// The schema in which spilled facts (`spilled`) are written to the table's files: as they were spilled
    /// (dictionaries stay dictionaries), with the file's name and hash as dictionaries keyed by the file number.
    /// The files do not carry this Arrow schema: their readers see text, as in the table's schema.
    pub(crate) fn encoded(spilled: &SchemaRef) -> SchemaRef {
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let mut fields: Vec<Field> =
            spilled.fields().iter().take(spilled.fields().len() - 1).map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(FILE_COLUMN, dictionary.clone(), false));
        fields.push(Field::new(HASH_COLUMN, dictionary, false));
        Arc::new(Schema::new(fields))
    }
}

/// The facts with their file number, in the spill files' schema.
fn with_provenance(
    facts: &RecordBatch,
    spilled: &SchemaRef,
    number: i32,
) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let mut columns: Vec<ArrayRef> = facts.columns().to_vec();
    columns.push(Arc::new(datafusion::arrow::array::Int32Array::from(vec![number; facts.num_rows()])));
    RecordBatch::try_new(spilled.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    /// Writes a one-commit Delta table by hand into the warehouse's table `cube`: one Parquet file with the column
    /// `physical` holding 1, 2, 3, described by `metadata` and `add`.
    fn hand_written(warehouse: &Warehouse, cube: &str, physical: &str, protocol: &str, metadata: &str, add: &str) {
        let dir = warehouse.local_dir().unwrap().join("facts").join(cube);
        std::fs::create_dir_all(dir.join("_delta_log")).unwrap();
        let values: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
        let batch = RecordBatch::try_from_iter([(physical, values)]).unwrap();
        let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
        let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = std::fs::metadata(dir.join("part-0.parquet")).unwrap().len();
        let add = add.replace("SIZE", &size.to_string());
        std::fs::write(dir.join("_delta_log/00000000000000000000.json"), format!("{protocol}\n{metadata}\n{add}\n"))
            .unwrap();
    }

    async fn rows(warehouse: &Warehouse, cube: &str) -> Vec<String> {
        let ctx = SessionContext::new();
        let (facts, _) = warehouse.facts(&ctx, cube, None).await.unwrap().unwrap();
        let batches = ctx.read_table(facts).unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        // The lines of the table below its header.
        let mut lines: Vec<String> = text.lines().filter(|l| l.starts_with("| ")).skip(1).map(str::to_owned).collect();
        lines.sort();
        lines
    }

    /// kubus's own tables are read by DataFusion's Parquet scan over their files; a table whose files do not hold
    /// its rows as they are — partition values kept in the log, columns named otherwise in the files — is read by
    /// the Delta scan, which puts them together, and gives the same rows.
    #[tokio::test]
    async fn a_table_whose_files_are_not_its_rows_is_read_by_the_delta_scan() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::open(dir.path()).unwrap();
        let field = |name: &str, metadata: &str| {
            format!(r#"{{"name":"{name}","type":"long","nullable":true,"metadata":{{{metadata}}}}}"#)
        };
        let metadata = |fields: &[String], partitions: &str, configuration: &str| {
            let schema = format!(r#"{{"type":"struct","fields":[{}]}}"#, fields.join(","));
            let schema = serde_json::to_string(&schema).unwrap();
            format!(
                r#"{{"metaData":{{"id":"t","format":{{"provider":"parquet","options":{{}}}},"schemaString":{schema},"partitionColumns":[{partitions}],"configuration":{{{configuration}}},"createdTime":0}}}}"#
            )
        };
        let add = |partitions: &str| {
            format!(
                r#"{{"add":{{"path":"part-0.parquet","partitionValues":{{{partitions}}},"size":SIZE,"modificationTime":0,"dataChange":true}}}}"#
            )
        };
        let protocol = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#;
        hand_written(&warehouse, "plain", "n", protocol, &metadata(&[field("n", "")], "", ""), &add(""));
        let partitioned = metadata(&[field("n", ""), field("p", "")], r#""p""#, "");
        hand_written(&warehouse, "partitioned", "n", protocol, &partitioned, &add(r#""p":"7""#));
        let mapped = metadata(
            &[field("n", r#""delta.columnMapping.id":1,"delta.columnMapping.physicalName":"col-1""#)],
            "",
            r#""delta.columnMapping.mode":"name","delta.columnMapping.maxColumnId":"1""#,
        );
        let protocol_mapped = r#"{"protocol":{"minReaderVersion":2,"minWriterVersion":5}}"#;
        hand_written(&warehouse, "mapped", "col-1", protocol_mapped, &mapped, &add(""));

        let plain = warehouse.table("plain").await.unwrap().unwrap();
        assert!(plain_files(&plain).unwrap().is_some(), "kubus's kind of table: its files are read directly");
        assert_eq!(rows(&warehouse, "plain").await, ["| 1 |", "| 2 |", "| 3 |"]);
        for cube in ["partitioned", "mapped"] {
            let table = warehouse.table(cube).await.unwrap().unwrap();
            assert!(plain_files(&table).unwrap().is_none(), "{cube}");
        }
        assert_eq!(rows(&warehouse, "partitioned").await, ["| 1 | 7 |", "| 2 | 7 |", "| 3 | 7 |"]);
        assert_eq!(rows(&warehouse, "mapped").await, ["| 1 |", "| 2 |", "| 3 |"]);
    }
}
