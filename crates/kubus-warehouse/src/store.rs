//! Where a warehouse's files are: a directory of this machine, or a prefix in a bucket of S3-compatible object
//! storage (MinIO, Ceph, a state data centre's). The Delta tables of facts are read and written by delta-rs through
//! object_store either way; this module holds the warehouse's other files (rollups, their manifests, the quarantine,
//! the protection record) and tells delta-rs and DataFusion how to reach a bucket.
//!
//! A bucket is reached with object_store's S3 client, configured from the `AWS_*` environment variables and the
//! project's `[storage]` settings (these win), whose secrets are never printed. Delta's commits to it are
//! conditional writes (`If-None-Match: *`): of two writers of the same version one fails and tries the next
//! version, so both commits land — the S3 API has had them since 2024; MinIO and Ceph have them too.

use bytes::Bytes;
use datafusion::prelude::SessionContext;
use deltalake::logstore::{LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use futures::TryStreamExt as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutPayload, UpdateVersion};
use std::collections::{BTreeMap, HashMap};
use std::io::{Error as IoError, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use url::Url;

/// The files of a warehouse: in a directory, or under a prefix of a bucket. Paths inside it (`rel`) are relative
/// and separated by `/`.
#[derive(Debug, Clone)]
pub(crate) enum Store {
    Dir(PathBuf),
    Bucket(Arc<Bucket>),
}

/// A prefix of a bucket. Shown for debugging by its URL only: its settings hold credentials.
pub(crate) struct Bucket {
    /// `s3://bucket/prefix/`.
    url: Url,
    /// The bucket's store (paths from the bucket's root), used on [`io`]'s runtime only.
    objects: Arc<dyn ObjectStore>,
    /// The settings it was made with, for delta-rs to make its own.
    options: HashMap<String, String>,
}

impl Store {
    /// A bucket prefix given as `s3://bucket/prefix`, with settings of object_store's S3 client (`endpoint`,
    /// `region`, `allow_http`, `access_key_id`, …) over those of the environment.
    pub(crate) fn bucket(location: &str, options: &BTreeMap<String, String>) -> Result<Store, String> {
        let mut url = Url::parse(location).map_err(|e| format!("{location} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "s3" | "s3a") || url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{location}: a warehouse is a directory or s3://bucket/prefix"));
        }
        if !url.path().ends_with('/') {
            url.set_path(&format!("{}/", url.path()));
        }
        for key in options.keys() {
            key.parse::<AmazonS3ConfigKey>()
                .map_err(|_| format!("[storage] {key} is not a setting of the S3 client (endpoint, region, …)"))?;
        }
        let options: HashMap<String, String> = options.clone().into_iter().collect();
        register_delta_factories();
        let objects = s3(&url, &options).map_err(|e| format!("{location}: {e}"))?;
        Ok(Store::Bucket(Arc::new(Bucket { url, objects, options })))
    }

    /// The warehouse's root as a URL ending in `/`.
    pub(crate) fn url(&self) -> Url {
        match self {
            Store::Dir(dir) => Url::from_directory_path(dir).expect("the warehouse directory is absolute"),
            Store::Bucket(b) => b.url.clone(),
        }
    }

    /// Where `rel` is, to name in a message.
    pub(crate) fn display(&self, rel: &str) -> PathBuf {
        match self {
            Store::Dir(dir) if rel.is_empty() => dir.clone(),
            Store::Dir(dir) => dir.join(rel),
            Store::Bucket(b) => PathBuf::from(format!("{}{rel}", b.url)),
        }
    }

    /// Where `rel` is, for DataFusion to read (a path or a URL).
    pub(crate) fn location(&self, rel: &str) -> String {
        self.display(rel).display().to_string()
    }

    /// The settings delta-rs opens a table of this warehouse with.
    pub(crate) fn delta_options(&self) -> HashMap<String, String> {
        match self {
            Store::Dir(_) => HashMap::new(),
            Store::Bucket(b) => b.options.clone(),
        }
    }

    /// Makes the bucket readable in `ctx` (a directory always is).
    pub(crate) fn register(&self, ctx: &SessionContext) -> std::io::Result<()> {
        self.register_in(&ctx.runtime_env())
    }

    /// [`Store::register`] in a runtime of one's own (a cluster process's).
    pub(crate) fn register_in(&self, runtime: &datafusion::execution::runtime_env::RuntimeEnv) -> std::io::Result<()> {
        if let Store::Bucket(b) = self {
            let root = format!("{}://{}", b.url.scheme(), b.url.host_str().unwrap_or_default());
            let root = datafusion::execution::object_store::ObjectStoreUrl::parse(root).map_err(IoError::other)?;
            if runtime.object_store(&root).is_err() {
                runtime.register_object_store(root.as_ref(), s3(&b.url, &b.options)?);
            }
        }
        Ok(())
    }

    /// The content of `rel`, `None` where there is none.
    pub(crate) fn read(&self, rel: &str) -> std::io::Result<Option<Bytes>> {
        match self {
            Store::Dir(dir) => match std::fs::read(dir.join(rel)) {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            Store::Bucket(b) => {
                let (objects, path) = (b.objects.clone(), b.path(rel));
                io(async move {
                    match objects.get(&path).await {
                        Ok(got) => got.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .map_err(io_error)
            }
        }
    }

    /// Whether the file `rel` is there.
    pub(crate) fn exists(&self, rel: &str) -> std::io::Result<bool> {
        match self {
            Store::Dir(dir) => Ok(dir.join(rel).is_file()),
            Store::Bucket(b) => {
                let (objects, path) = (b.objects.clone(), b.path(rel));
                io(async move {
                    match objects.head(&path).await {
                        Ok(_) => Ok(true),
                        Err(object_store::Error::NotFound { .. }) => Ok(false),
                        Err(e) => Err(e),
                    }
                })
                .map_err(io_error)
            }
        }
    }

    /// Writes `rel` whole: readers see the earlier content or this, never a part (in a directory: a file
    /// renamed into place; in a bucket, every write is whole).
    pub(crate) fn write(&self, rel: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(rel);
                let parent = path.parent().expect("a file in a directory");
                std::fs::create_dir_all(parent)?;
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
                let temporary = parent.join(format!(".{name}.{}.tmp", std::process::id()));
                std::fs::write(&temporary, bytes)?;
                std::fs::rename(&temporary, &path)
            }
            Store::Bucket(b) => {
                let (objects, path) = (b.objects.clone(), b.path(rel));
                io(async move { objects.put(&path, PutPayload::from(bytes)).await.map(drop) }).map_err(io_error)
            }
        }
    }

    /// Replaces `rel` by what `change` makes of its content (`None`: there is none), without losing a change
    /// made meanwhile: in a bucket, writers on other machines may change it between the read and the write, so
    /// the write is conditional on the content read (`If-Match`, `If-None-Match`) and `change` runs again on the
    /// newer content where it is not. In a directory, the caller's lock keeps other writers out.
    pub(crate) fn update<E: From<IoError>>(
        &self,
        rel: &str,
        mut change: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>, E>,
    ) -> Result<(), E> {
        let Store::Bucket(b) = self else {
            let changed = change(self.read(rel)?.as_deref())?;
            return Ok(self.write(rel, changed)?);
        };
        loop {
            let (objects, path) = (b.objects.clone(), b.path(rel));
            let read = io(async move {
                match objects.get(&path).await {
                    Ok(got) => {
                        let version =
                            UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                        Ok(Some((got.bytes().await?, version)))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .map_err(io_error)?;
            let changed = change(read.as_ref().map(|(bytes, _)| bytes.as_ref()))?;
            let mode = match read {
                Some((_, version)) => PutMode::Update(version),
                None => PutMode::Create,
            };
            let (objects, path) = (b.objects.clone(), b.path(rel));
            let written = io(async move { objects.put_opts(&path, PutPayload::from(changed), mode.into()).await });
            match written {
                Ok(_) => return Ok(()),
                Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(io_error(e).into()),
            }
        }
    }

    /// Moves the file `local` (in a directory of this machine's own) to `rel`; returns its size. Into a directory
    /// warehouse it is renamed (`local` must be on the same file system); into a bucket it is uploaded in parts
    /// and then removed. Readers see it only once it is whole.
    pub(crate) fn upload(&self, local: &Path, rel: &str) -> std::io::Result<u64> {
        let size = std::fs::metadata(local)?.len();
        match self {
            Store::Dir(dir) => {
                let target = dir.join(rel);
                std::fs::create_dir_all(target.parent().expect("a file in a directory"))?;
                std::fs::rename(local, &target)?;
            }
            Store::Bucket(b) => {
                let (objects, path, file) = (b.objects.clone(), b.path(rel), local.to_owned());
                io(async move {
                    use tokio::io::AsyncWriteExt as _;
                    let mut file = tokio::fs::File::open(&file).await?;
                    let mut writer = object_store::buffered::BufWriter::with_capacity(objects, path, 16 << 20);
                    match tokio::io::copy(&mut file, &mut writer).await {
                        Ok(_) => writer.shutdown().await,
                        Err(e) => {
                            let _ = writer.abort().await;
                            Err(e)
                        }
                    }
                })?;
                std::fs::remove_file(local)?;
            }
        }
        Ok(size)
    }

    /// The names of the files and folders directly in the folder `rel`; none where there is no such folder.
    pub(crate) fn list(&self, rel: &str) -> std::io::Result<Vec<String>> {
        match self {
            Store::Dir(dir) => {
                let entries = match std::fs::read_dir(dir.join(rel)) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                };
                let names = entries.map(|e| Ok(e?.file_name().into_string().ok()));
                names.filter_map(Result::transpose).collect()
            }
            Store::Bucket(b) => {
                let (objects, path) = (b.objects.clone(), b.path(rel));
                let listed = io(async move { objects.list_with_delimiter(Some(&path)).await }).map_err(io_error)?;
                let files = listed.objects.iter().map(|o| &o.location);
                Ok(files.chain(&listed.common_prefixes).filter_map(|p| p.filename().map(str::to_owned)).collect())
            }
        }
    }

    /// Removes the file `rel`; returns its size, `None` where there was none.
    pub(crate) fn remove(&self, rel: &str) -> std::io::Result<Option<u64>> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(rel);
                let size = match std::fs::metadata(&path) {
                    Ok(meta) => meta.len(),
                    Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(Some(size)),
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Store::Bucket(b) => {
                let (objects, path) = (b.objects.clone(), b.path(rel));
                io(async move {
                    let size = match objects.head(&path).await {
                        Ok(meta) => meta.size,
                        Err(object_store::Error::NotFound { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    objects.delete(&path).await.map(|()| Some(size))
                })
                .map_err(io_error)
            }
        }
    }

    /// Removes everything of the warehouse.
    pub(crate) fn remove_all(&self) -> std::io::Result<()> {
        match self {
            Store::Dir(dir) => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => std::fs::create_dir_all(dir),
            },
            Store::Bucket(b) => {
                let (objects, prefix) = (b.objects.clone(), b.path(""));
                io(async move {
                    let all: Vec<_> = objects.list(Some(&prefix)).map_ok(|o| o.location).try_collect().await?;
                    for path in all {
                        objects.delete(&path).await?;
                    }
                    Ok(())
                })
                .map_err(io_error)
            }
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url.as_str()).finish_non_exhaustive()
    }
}

impl Bucket {
    fn path(&self, rel: &str) -> ObjectPath {
        let prefix = self.url.path().trim_matches('/');
        ObjectPath::from(format!("{prefix}/{rel}").trim_matches('/'))
    }
}

/// An S3 client for the bucket of `url`: the environment's `AWS_*` settings, then `options`.
fn s3(url: &Url, options: &HashMap<String, String>) -> std::io::Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    for (key, value) in options {
        let key = key.parse::<AmazonS3ConfigKey>().map_err(|e| IoError::new(ErrorKind::InvalidInput, e))?;
        builder = builder.with_config(key, value);
    }
    Ok(Arc::new(builder.build().map_err(io_error)?))
}

fn io_error(e: object_store::Error) -> IoError {
    match e {
        object_store::Error::NotFound { .. } => IoError::new(ErrorKind::NotFound, e),
        e => IoError::other(e),
    }
}

/// Runs `work` on the runtime of the warehouse's own requests to a bucket and waits for it: callable from
/// synchronous code, in or out of another runtime. One runtime for the process, never dropped: the S3 client's
/// pooled connections belong to the runtime they were made on.
fn io<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kubus-storage")
            .enable_all()
            .build()
            .expect("the storage runtime starts")
    });
    match futures::executor::block_on(runtime.spawn(work)) {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Teaches delta-rs the `s3://` (and `s3a://`) scheme: a table's store is object_store's S3 client made as
/// [`s3`] makes it (from the options the table is opened with), its log Delta's default one, which commits by
/// conditional writes.
fn register_delta_factories() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        for scheme in ["s3://", "s3a://"] {
            let scheme = Url::parse(scheme).expect("a scheme");
            deltalake::logstore::object_store_factories().insert(scheme.clone(), Arc::new(S3Tables));
            deltalake::logstore::logstore_factories().insert(scheme, Arc::new(S3Tables));
        }
    });
}

struct S3Tables;

impl ObjectStoreFactory for S3Tables {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let store = s3(url, &config.raw).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        let path =
            ObjectPath::from_url_path(url.path()).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        Ok((store, path))
    }
}

impl LogStoreFactory for S3Tables {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(deltalake::logstore::default_logstore(prefixed_store, root_store, location, options))
    }
}
