//! Rollups in a project: built for a cube's facts version after each ingest (and on demand), and chosen for a
//! query when one answers it exactly (see `kubus_query::rollup`).

use crate::{Error, Project, Result};
use datafusion::prelude::SessionContext;
use kubus_model::Rollup;
use kubus_query::CubePlan;
use kubus_query::rollup::{self, Routing};
use kubus_warehouse::StoredRollup;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a project keeps between queries about its rollups: those read into memory (by file), and the
/// fingerprints of the definitions (the model does not change while a project is open).
#[derive(Debug, Default, Clone)]
pub(crate) struct RollupCache {
    tables: Arc<Mutex<HashMap<String, Arc<dyn datafusion::catalog::TableProvider>>>>,
    fingerprints: Arc<Mutex<HashMap<String, String>>>,
    plans: Arc<Mutex<Plans>>,
}

/// The physical plans of queries answered from rollups (see [`kubus_query::Prepared`]), by what decides them
/// ([`plan_key`]); at most [`PLANS`], the oldest dropped first.
#[derive(Debug, Default)]
struct Plans {
    by_key: HashMap<String, kubus_query::Prepared>,
    order: std::collections::VecDeque<String>,
}

/// How many prepared plans a project keeps.
const PLANS: usize = 512;

impl RollupCache {
    /// The plan prepared earlier under `key`.
    pub(crate) fn plan(&self, key: &str) -> Option<kubus_query::Prepared> {
        self.plans.lock().expect("the cache lock is never held across a panic").by_key.get(key).cloned()
    }

    /// Keeps a plan prepared under `key`.
    pub(crate) fn keep_plan(&self, key: String, prepared: kubus_query::Prepared) {
        let mut plans = self.plans.lock().expect("the cache lock is never held across a panic");
        if plans.by_key.insert(key.clone(), prepared).is_none() {
            plans.order.push_back(key);
        }
        while plans.order.len() > PLANS {
            if let Some(oldest) = plans.order.pop_front() {
                plans.by_key.remove(&oldest);
            }
        }
    }
}

/// What decides the plan of a query read from rollups only (none for one that reads facts): the query as asked
/// after the role's restrictions, each cube's noise, and the rollup files read — immutable, unique per build, so a
/// plan prepared for them reads the same cells.
pub(crate) fn plan_key(query: &kubus_query::Query, plan: &CubePlan<'_>, routes: &[Route]) -> Option<String> {
    let files: Vec<&str> = routes.iter().map(|r| r.rollup_file.as_deref()).collect::<Option<_>>()?;
    let noise = |p: &CubePlan<'_>| {
        p.noise.as_ref().map(|n| format!("{} {} {}", n.ptable.fingerprint(), n.magnitude, n.unit)).unwrap_or_default()
    };
    let noises: Vec<String> = std::iter::once(plan).chain(&plan.sides).map(noise).collect();
    let cubes: Vec<String> = routes.iter().map(|r| format!("{}@{}", r.cube, r.version)).collect();
    Some(format!("{}\n{noises:?}\n{cubes:?} {files:?}", serde_json::to_string(query).ok()?))
}

/// Rollup files up to this size are read into memory once per project; larger ones are read from disk per query.
const CACHED_BYTES: u64 = 64 << 20;

/// A session for queries that read only rollups (a few thousand cells in memory): one partition, and one pass
/// of the logical optimizer (planning, not reading, is most of such a query's time). One session serves them all:
/// making one registers DataFusion's hundreds of functions, and these queries register nothing in it (tables
/// and member batches are read as plans of their own).
pub(crate) fn small_context() -> SessionContext {
    static SMALL: std::sync::LazyLock<SessionContext> = std::sync::LazyLock::new(|| {
        let mut config = datafusion::prelude::SessionConfig::new().with_target_partitions(1);
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.max_passes = 1;
        // Plans are run again (see `kubus_query::Prepared`): no dynamic filters, whose state a run leaves behind.
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        SessionContext::new_with_config(config)
    });
    SMALL.clone()
}

/// The session a query reads its facts in and runs in, made when first needed: a query answered from rollups held in
/// memory runs in a small session of its own ([`small_context`]) and never needs it. With a cluster, facts that
/// are not small are read in a session whose plans run there.
pub(crate) struct FactSession<'p> {
    project: &'p Project,
    ctx: std::sync::OnceLock<SessionContext>,
    remote: std::sync::OnceLock<SessionContext>,
}

impl<'p> FactSession<'p> {
    pub(crate) fn new(project: &'p Project) -> FactSession<'p> {
        FactSession { project, ctx: std::sync::OnceLock::new(), remote: std::sync::OnceLock::new() }
    }

    /// The session whose plans run on the cluster at `address`, made now if it was not yet.
    fn remote(&self, address: &str) -> Result<&SessionContext> {
        if let Some(ctx) = self.remote.get() {
            return Ok(ctx);
        }
        let ctx = crate::cluster::session(address)?;
        Ok(self.remote.get_or_init(|| ctx))
    }

    /// The session, made now if it was not yet.
    pub(crate) fn get(&self) -> Result<&SessionContext> {
        if let Some(ctx) = self.ctx.get() {
            return Ok(ctx);
        }
        let ctx = self.project.session()?;
        Ok(self.ctx.get_or_init(|| ctx))
    }

    /// The session to run a plan in that reads along `routes`: the small one where every cube is read from a
    /// rollup (one partition spares the threads' hand-offs); the cluster's where it reads facts there (not cells
    /// aggregated there already); else the one its facts were read in.
    pub(crate) fn for_routes(self, routes: &[Route]) -> Result<SessionContext> {
        if routes.iter().all(|r| r.rollup.is_some()) {
            return Ok(small_context());
        }
        if let Some(ctx) = self.remote.into_inner().filter(|_| routes.iter().any(Route::runs_on_cluster)) {
            return Ok(ctx);
        }
        match self.ctx.into_inner() {
            Some(ctx) => Ok(ctx),
            None => self.project.session(),
        }
    }
}

/// How long a question that timed out on the cluster waits for its jobs to be cancelled there.
const CANCEL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `work`, a plan of `ctx` that runs on the cluster where `route` read its facts there: within `[engine]
/// timeout_s` (past it, its jobs are cancelled on the cluster), and with its errors said to be the cluster's (a lost
/// executor, a job the scheduler failed). Elsewhere it just runs.
pub(crate) async fn on_cluster<T>(
    route: Option<&Route>,
    timeout: std::time::Duration,
    ctx: &SessionContext,
    work: impl std::future::Future<Output = kubus_query::Result<T>>,
) -> Result<T> {
    let Some(cluster) = route.and_then(|r| r.engine.as_ref()).filter(|e| e.remote).map(|e| &e.cluster) else {
        return Ok(work.await?);
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(done) => done.map_err(|e| Error::Cluster {
            what: format!("answer on the Ballista cluster at {cluster}"),
            source: Box::new(e),
        }),
        Err(_) => {
            // A scheduler that does not answer must not hold the error up as long as the kernel retries a connection.
            let cancelled = tokio::time::timeout(CANCEL_TIMEOUT, crate::cluster::cancel_jobs(ctx, cluster)).await;
            let jobs = match cancelled.unwrap_or_else(|_| Err("the scheduler did not answer".to_owned())) {
                Ok(ids) if ids.is_empty() => "the scheduler had not accepted its job yet".to_owned(),
                Ok(ids) if ids.len() == 1 => format!("its job on the cluster was cancelled ({})", ids[0]),
                Ok(ids) => format!("its jobs on the cluster were cancelled ({})", ids.join(", ")),
                Err(e) => format!("cancelling its job on the cluster failed, it may run on: {e}"),
            };
            Err(Error::ClusterTimeout { cluster: cluster.clone(), seconds: timeout.as_secs(), jobs })
        }
    }
}

/// How many versions back a build looks for rollups to merge from.
const MERGE_LOOKBACK: u64 = 64;

/// The rollups of an earlier facts version, what changed in the facts since, and the periods that changed (keys at
/// the time role's recorded level; where facts were replaced and every changed fact has a period).
struct Earlier {
    version: u64,
    stored: Vec<StoredRollup>,
    changes: kubus_warehouse::Changes,
    periods: Option<Vec<String>>,
}

/// What the rollups of a new version are made of besides the facts given.
#[derive(Clone, Copy)]
enum Base<'b> {
    /// Nothing: the facts given are all the facts.
    All,
    /// The earlier version's rows, merged with those of the facts given (those added since).
    Merged(u64, &'b HashMap<&'b str, &'b StoredRollup>),
    /// The earlier version's rows of other periods than these (keys at the rollups' time level), next to those of
    /// the facts given (all the facts of these periods).
    Periods(u64, &'b HashMap<&'b str, &'b StoredRollup>, &'b [String]),
}

/// The periods a rollup builds again (keys at its time level) and the cut of the facts to them.
type PeriodCut = (Vec<String>, datafusion::prelude::Expr);

/// A rollup made from the rows stored for an earlier version (`base`): merged with the added facts' rows, or, with
/// `periods`, those periods' rows built again.
struct Remade<'r> {
    rollup: &'r Rollup,
    fingerprint: &'r str,
    base: StoredRollup,
    periods: Option<PeriodCut>,
}

/// What every rollup built for a version in one go shares: the session, the dictionaries of ids (by value
/// column) and their files.
struct Build<'b> {
    ctx: &'b SessionContext,
    cube: &'b kubus_model::Cube,
    version: u64,
    ids: &'b HashMap<String, datafusion::arrow::array::RecordBatch>,
    dictionaries: &'b std::collections::BTreeMap<String, String>,
}

/// Whether queries may be answered from rollups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RollupUse {
    /// The smallest rollup that answers exactly, else the facts.
    #[default]
    Prefer,
    /// Always the facts (`--no-rollups`).
    Never,
    /// Only rollups: a query that no rollup answers is an error instead of a scan of the facts.
    Only,
}

/// A rollup's state for one facts version, for `kubus rollups`.
#[derive(Debug, Clone)]
pub struct RollupStatus {
    /// The cube.
    pub cube: String,
    /// The rollup.
    pub name: String,
    /// Its levels (`role` or `role.level`).
    pub levels: Vec<String>,
    /// The aggregate measures it stores.
    pub measures: Vec<String>,
    /// The facts version looked at.
    pub version: u64,
    /// What is stored for that version, if the rollup is built with its current definition.
    pub stored: Option<StoredRollup>,
}

/// How one cube of a query was read: its facts version and the rollup chosen, with every verdict.
#[derive(Debug, Clone)]
pub struct Route {
    /// The cube.
    pub cube: String,
    /// Its facts version.
    pub version: u64,
    /// The rollup that answered, `None` for the facts.
    pub rollup: Option<String>,
    /// The file of the rollup that answered (unique per build).
    pub rollup_file: Option<String>,
    /// Per declared rollup: its rows when built for this version, and why it does not answer (`None`: it does).
    pub verdicts: Vec<(String, Option<u64>, Option<String>)>,
    /// Read from the facts, which were aggregated once at the query's finest grain and every grain from those
    /// cells (see [`rollup::finest_grain`]).
    pub finest_grain: bool,
    /// Where the facts were read, for a project with a cluster: on it, or here and why (`None` without one).
    pub engine: Option<Engine>,
}

/// Where a query's facts were read in a project with a cluster (`[engine] cluster`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// The scheduler's `host:port`.
    pub cluster: String,
    /// Whether the cluster read them (else this process did).
    pub remote: bool,
    /// Why, in words.
    pub why: String,
}

impl Engine {
    /// Where facts of `bytes` in `table` are read with the cluster at `cluster` that reads facts of at least
    /// `local_below` bytes: a cluster reads Parquet files, not a Delta table that needs more than its files.
    fn choose(cluster: &str, local_below: u64, bytes: u64, table: &dyn datafusion::catalog::TableProvider) -> Engine {
        let mb = |b: u64| format!("{:.1} MB", b as f64 / (1 << 20) as f64);
        let files = table.is::<datafusion::datasource::listing::ListingTable>();
        let (remote, why) = match (bytes >= local_below, files) {
            (true, true) if local_below == 0 => {
                (true, format!("the facts' files hold {}, and [engine] local_below_mb = 0 sends all there", mb(bytes)))
            }
            (true, true) => (
                true,
                format!("the facts' files hold {}, at least {} ([engine] local_below_mb)", mb(bytes), mb(local_below)),
            ),
            (false, _) => (
                false,
                format!("the facts' files hold {}, below {} ([engine] local_below_mb)", mb(bytes), mb(local_below)),
            ),
            (true, false) => (
                false,
                "the facts are a Delta table with deletion vectors, partitions or column mapping, not plain files"
                    .to_owned(),
            ),
        };
        Engine { cluster: cluster.to_owned(), remote, why }
    }

    fn describe(&self) -> String {
        match self.remote {
            true => format!("  read on the Ballista cluster at {}: {}\n", self.cluster, self.why),
            false => format!("  read in this process, not on the Ballista cluster at {}: {}\n", self.cluster, self.why),
        }
    }
}

impl Route {
    /// Whether the rest of the query runs on the cluster: its facts are read there (and were not aggregated there
    /// already, at the query's finest grain).
    pub(crate) fn runs_on_cluster(&self) -> bool {
        self.engine.as_ref().is_some_and(|e| e.remote) && !self.finest_grain
    }

    /// The routing decision as text, for `kubus explain`.
    pub fn describe(&self, mode: RollupUse) -> String {
        let mut out = format!("{} at version {}: ", self.cube, self.version);
        let once = if self.finest_grain { ", aggregated once at the query's finest grain" } else { "" };
        out += &match (&self.rollup, mode) {
            (_, RollupUse::Never) => format!("facts{once} (rollups not used: --no-rollups)\n"),
            (Some(r), _) => format!("rollup {r}\n"),
            (None, _) if self.verdicts.is_empty() => format!("facts{once} (the cube declares no rollups)\n"),
            (None, _) => format!("facts{once} (no rollup answers this query)\n"),
        };
        if let Some(engine) = &self.engine {
            out += &engine.describe();
        }
        if mode != RollupUse::Never {
            for (name, rows, why) in &self.verdicts {
                let size = rows.map(|r| format!(" ({r} rows)")).unwrap_or_default();
                let verdict = match (why, Some(name) == self.rollup.as_ref()) {
                    (_, true) => "chosen: the smallest that answers".to_owned(),
                    (None, false) => "answers, but is larger".to_owned(),
                    (Some(why), false) => why.clone(),
                };
                out += &format!("  {name}{size}: {verdict}\n");
            }
        }
        out
    }
}

impl Project {
    /// A stored rollup as a table: from memory when it is small enough to be held there.
    async fn rollup_table(
        &self,
        session: &FactSession<'_>,
        cube: &str,
        stored: &StoredRollup,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
        let key = format!("{cube}/{}", stored.file);
        if let Some(table) =
            self.rollup_cache.tables.lock().expect("the cache lock is never held across a panic").get(&key)
        {
            return Ok(table.clone());
        }
        let ctx = session.get()?;
        let table = self.warehouse().rollup_table(ctx, cube, stored).await?;
        if stored.bytes > CACHED_BYTES {
            return Ok(table);
        }
        let schema = table.schema();
        let batches = ctx
            .read_table(table)
            .map_err(kubus_query::Error::from)?
            .collect()
            .await
            .map_err(kubus_query::Error::from)?;
        let table: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(
            datafusion::datasource::MemTable::try_new(schema, vec![batches]).map_err(kubus_query::Error::from)?,
        );
        self.rollup_cache
            .tables
            .lock()
            .expect("the cache lock is never held across a panic")
            .insert(key, table.clone());
        Ok(table)
    }

    /// The fingerprint of a rollup's definition (see [`rollup::fingerprint`]), computed once per project.
    fn fingerprint(&self, cube: &kubus_model::Cube, r: &Rollup) -> Result<String> {
        let key = format!("{}/{}", cube.name(), r.name());
        if let Some(f) =
            self.rollup_cache.fingerprints.lock().expect("the cache lock is never held across a panic").get(&key)
        {
            return Ok(f.clone());
        }
        let f = rollup::fingerprint(self.model(), cube, r)?;
        self.rollup_cache
            .fingerprints
            .lock()
            .expect("the cache lock is never held across a panic")
            .insert(key, f.clone());
        Ok(f)
    }

    /// Builds the rollups of a cube for its latest facts version (those not yet stored with their current
    /// definition) and records what is stored for that version. Returns what is stored.
    pub async fn build_rollups(&self, cube: &str) -> Result<Vec<StoredRollup>> {
        let model = self.model();
        let cube = model.cube(cube)?;
        let warehouse = self.warehouse();
        let Some(version) = warehouse.latest_version(cube.name())? else { return Ok(Vec::new()) };
        if cube.rollups().is_empty() {
            return Ok(Vec::new());
        }
        let stored = warehouse.stored_rollups(cube.name(), version)?;
        let mut kept = Vec::new();
        let mut missing: Vec<(&Rollup, String)> = Vec::new();
        for r in cube.rollups() {
            let fingerprint = self.fingerprint(cube, r)?;
            match stored.iter().find(|s| s.name == r.name() && s.fingerprint == fingerprint) {
                Some(s) => kept.push(s.clone()),
                None => missing.push((r, fingerprint)),
            }
        }
        if !missing.is_empty() {
            let ctx = SessionContext::new();
            let (facts, _) = self.facts_at(&ctx, cube.name(), Some(version)).await?;
            let earlier = self.earlier_rollups(&ctx, cube, version).await?;
            // A rollup stored for the earlier version with the same definition is made from its rows: merged with
            // the added facts' where facts were only added, its changed periods built again where facts were
            // replaced (if it holds the time role); the others are built from all the facts.
            let mut remade: Vec<Remade> = Vec::new();
            let mut builds: Vec<(&Rollup, &str)> = Vec::new();
            for (r, fingerprint) in &missing {
                let base = earlier.as_ref().and_then(|e| {
                    let base = e.stored.iter().find(|s| {
                        s.name == r.name()
                            && &s.fingerprint == fingerprint
                            && warehouse.has_rollup_file(cube.name(), &s.file).unwrap_or(false)
                    });
                    base.map(|base| (e, base.clone()))
                });
                let (definition, fingerprint) = (*r, fingerprint.as_str());
                match base {
                    Some((e, base)) if e.changes.removed.is_none() => {
                        remade.push(Remade { rollup: definition, fingerprint, base, periods: None })
                    }
                    Some((e, base)) => match e.periods.as_deref().map(|p| rollup::period_cut(model, cube, r, p)) {
                        Some(Ok(Some(periods))) => {
                            remade.push(Remade { rollup: definition, fingerprint, base, periods: Some(periods) })
                        }
                        // Without the time role (or a period the dimension does not know): all the facts.
                        _ => builds.push((definition, fingerprint)),
                    },
                    None => builds.push((definition, fingerprint)),
                }
            }
            // One dictionary per value column for every rollup built now: the earlier one extended where rollups
            // are made from earlier rows (their bitmaps hold its ids), else one of all the facts' values.
            let all: Vec<&Rollup> = missing.iter().map(|(r, _)| *r).collect();
            let needs = |r: &Rollup, column: &String| rollup::distinct_columns(cube, &[r]).contains(column);
            let mut ids = HashMap::new();
            let mut dictionaries = std::collections::BTreeMap::new();
            for column in rollup::distinct_columns(cube, &all) {
                let needing = remade.iter().filter(|m| needs(m.rollup, &column));
                let file = needing.clone().find_map(|m| m.base.dictionaries.get(&column));
                let extended = match (file, &earlier) {
                    (Some(file), Some(e)) => {
                        match (warehouse.dictionary(&ctx, cube.name(), file).await?, &e.changes.added) {
                            (Some(d), Some(added)) => {
                                Some(rollup::extend_dictionary(&ctx, &d, added.clone(), &column).await?)
                            }
                            // Nothing added (never so in a commit of kubus's): a fresh dictionary, the rollups rebuilt.
                            (_, None) | (None, _) => None,
                        }
                    }
                    _ => None,
                };
                // A rollup whose bitmaps hold other ids than this dictionary's is built from all the facts instead.
                let file = file.filter(|_| extended.is_some()).cloned();
                let (keep, rebuild): (Vec<_>, Vec<_>) = std::mem::take(&mut remade)
                    .into_iter()
                    .partition(|m| !needs(m.rollup, &column) || m.base.dictionaries.get(&column) == file.as_ref());
                remade = keep;
                builds.extend(rebuild.into_iter().map(|m| (m.rollup, m.fingerprint)));
                let dictionary = match extended {
                    Some(d) => d,
                    None => rollup::dictionary(&ctx, facts.clone(), &column).await?,
                };
                let stored =
                    warehouse.store_dictionary(&ctx, cube.name(), &column, version, dictionary.clone()).await?;
                dictionaries.insert(column.clone(), stored);
                ids.insert(column, dictionary);
            }
            let build = Build { ctx: &ctx, cube, version, ids: &ids, dictionaries: &dictionaries };
            kept.extend(self.build_scans(&build, &builds, facts.clone(), Base::All).await?);
            if let Some(e) = &earlier {
                let bases: HashMap<&str, &StoredRollup> = remade.iter().map(|m| (m.rollup.name(), &m.base)).collect();
                let merged: Vec<(&Rollup, &str)> =
                    remade.iter().filter(|m| m.periods.is_none()).map(|m| (m.rollup, m.fingerprint)).collect();
                if let (Some(added), false) = (&e.changes.added, merged.is_empty()) {
                    kept.extend(
                        self.build_scans(&build, &merged, added.clone(), Base::Merged(e.version, &bases)).await?,
                    );
                }
                // Rollups whose time level is the same share the periods to build again, and their facts.
                let mut by_periods: Vec<(&PeriodCut, Vec<(&Rollup, &str)>)> = Vec::new();
                for m in &remade {
                    let Some(periods) = &m.periods else { continue };
                    match by_periods.iter_mut().find(|(p, _)| *p == periods) {
                        Some(group) => group.1.push((m.rollup, m.fingerprint)),
                        None => by_periods.push((periods, vec![(m.rollup, m.fingerprint)])),
                    }
                }
                for ((keys, cut), rollups) in by_periods {
                    let changed = ctx
                        .read_table(facts.clone())
                        .and_then(|df| df.filter(cut.clone()))
                        .map_err(kubus_query::Error::from)?
                        .into_view();
                    kept.extend(
                        self.build_scans(&build, &rollups, changed, Base::Periods(e.version, &bases, keys)).await?,
                    );
                }
            }
        }
        kept.sort_by_key(|s| cube.rollups().iter().position(|r| r.name() == s.name));
        warehouse.record_rollups(cube.name(), version, &kept)?;
        Ok(kept)
    }

    /// Builds `rollups` (with their fingerprints) for a facts version from `facts`, one aggregation per
    /// [`rollup::scans`], and stores them, each made from its `base` rows too.
    async fn build_scans(
        &self,
        build: &Build<'_>,
        rollups: &[(&Rollup, &str)],
        facts: Arc<dyn datafusion::catalog::TableProvider>,
        base: Base<'_>,
    ) -> Result<Vec<StoredRollup>> {
        let (ctx, cube, warehouse) = (build.ctx, build.cube, self.warehouse());
        let all: Vec<&Rollup> = rollups.iter().map(|(r, _)| *r).collect();
        let mut stored = Vec::new();
        // Rollups made from earlier rows read them and write them, little else: they run side by side, all
        // scans' at once.
        let (merge, from) = match base {
            Base::All => (false, None),
            Base::Merged(version, _) | Base::Periods(version, ..) => (true, Some(version)),
        };
        let mut merges = Vec::new();
        for scan in rollup::scans(cube, &all) {
            let started = std::time::Instant::now();
            let frame = rollup::build_frame(ctx, self.model(), cube, &scan, facts.clone(), build.ids)?;
            // Several rollups from one aggregation (or the few rows of added facts): run it once, then write each
            // one's rows from memory (a rollup is small next to the facts).
            let frame = match (scan.len(), merge) {
                (1, false) => frame,
                _ => ctx
                    .read_batches(frame.collect().await.map_err(kubus_query::Error::from)?)
                    .map_err(kubus_query::Error::from)?,
            };
            let aggregated = started.elapsed().as_millis() as u64;
            for i in 0..scan.len() {
                let (scan, frame) = (scan.clone(), frame.clone());
                let one = async move {
                    let r = scan[i];
                    let fingerprint = rollups.iter().find(|(m, _)| m.name() == r.name()).expect("a scan's rollup").1;
                    let mut rows = rollup::rollup_rows(self.model(), cube, &scan, i, frame)?;
                    if let Base::Merged(_, bases) | Base::Periods(_, bases, _) = base {
                        let table = warehouse.rollup_table(ctx, cube.name(), bases[r.name()]).await?;
                        let earlier = ctx.read_table(table).map_err(kubus_query::Error::from)?;
                        rows = match base {
                            Base::Periods(_, _, periods) => rollup::replace_periods(cube, earlier, rows, periods)?,
                            _ => rollup::merge_rows(cube, r, earlier, rows)?,
                        };
                    }
                    let mut one =
                        warehouse.store_rollup(cube.name(), r.name(), build.version, fingerprint, rows).await?;
                    if scan.len() > 1 || merge {
                        one.build_ms += aggregated;
                    }
                    one.scan = scan.iter().map(|r| r.name().to_owned()).collect();
                    one.merged_from = from;
                    one.dictionaries = rollup::distinct_columns(cube, &[r])
                        .into_iter()
                        .filter_map(|c| build.dictionaries.get(&c).map(|f| (c, f.clone())))
                        .collect();
                    Ok::<_, Error>(one)
                };
                match merge {
                    true => merges.push(one),
                    false => stored.push(one.await?),
                }
            }
        }
        stored.extend(futures::future::try_join_all(merges).await?);
        Ok(stored)
    }

    /// The latest version before `version` with rollups stored, and what the commits since changed (if they only
    /// added and replaced facts): its rollups can be made from their rows and the changed facts instead of all
    /// the facts.
    async fn earlier_rollups(
        &self,
        ctx: &SessionContext,
        cube: &kubus_model::Cube,
        version: u64,
    ) -> Result<Option<Earlier>> {
        let warehouse = self.warehouse();
        for v in (version.saturating_sub(MERGE_LOOKBACK)..version).rev() {
            let stored = warehouse.stored_rollups(cube.name(), v)?;
            if stored.is_empty() {
                continue;
            }
            let Some(changes) = warehouse.changes_since(ctx, cube.name(), v, version).await? else { return Ok(None) };
            let periods = match &changes.removed {
                Some(removed) => {
                    let changed: Vec<_> = changes.added.iter().chain([removed]).cloned().collect();
                    rollup::periods_of(ctx, cube, &changed).await?
                }
                None if changes.added.is_none() => return Ok(None),
                None => None,
            };
            return Ok(Some(Earlier { version: v, stored, changes, periods }));
        }
        Ok(None)
    }

    /// Removes the rollups of a cube's earlier facts versions beyond the latest `[rollups] keep_versions` (see
    /// [`kubus_warehouse::Warehouse::prune_rollups`]); queries as of those versions read their facts.
    pub fn prune_rollups(&self, cube: &str) -> Result<kubus_warehouse::Pruned> {
        let cube = self.model().cube(cube)?;
        Ok(self.warehouse().prune_rollups(cube.name(), self.config().rollup_versions)?)
    }

    /// Every declared rollup of the cubes with facts (or of one cube), at the latest facts version.
    pub fn rollup_status(&self, cube: Option<&str>) -> Result<Vec<RollupStatus>> {
        let model = self.model();
        let cubes = match cube {
            Some(c) => vec![model.cube(c)?],
            None => model.cubes().collect(),
        };
        let mut out = Vec::new();
        for cube in cubes {
            let Some(version) = self.warehouse().latest_version(cube.name())? else { continue };
            let stored = self.warehouse().stored_rollups(cube.name(), version)?;
            for r in cube.rollups() {
                let fingerprint = self.fingerprint(cube, r)?;
                let dims = cube.dimensions();
                let levels = r
                    .levels()
                    .iter()
                    .map(|(role, level)| match dims.iter().find(|d| d.name() == role) {
                        Some(d) if d.fact_level() != *level => match model.dimension(d.dimension()) {
                            Ok(dim) => format!("{role}.{}", dim.levels()[*level].name()),
                            Err(_) => role.clone(),
                        },
                        _ => role.clone(),
                    })
                    .collect();
                out.push(RollupStatus {
                    cube: cube.name().to_owned(),
                    name: r.name().to_owned(),
                    levels,
                    measures: r.measures().to_vec(),
                    version,
                    stored: stored.iter().find(|s| s.name == r.name() && s.fingerprint == fingerprint).cloned(),
                });
            }
        }
        Ok(out)
    }

    /// Reads one cube of a plan: from the smallest rollup that answers it (unless `mode` says otherwise), else
    /// from its facts. Returns the plan to execute (moved onto the rollup), the table, and the route taken.
    pub(crate) async fn route<'m>(
        &'m self,
        session: &FactSession<'_>,
        plan: &CubePlan<'m>,
        as_of: Option<u64>,
        options: &crate::QueryOptions,
    ) -> Result<(CubePlan<'m>, std::sync::Arc<dyn datafusion::catalog::TableProvider>, Route)> {
        let (cube, mode) = (plan.cube, options.rollups);
        let latest = self.warehouse().latest_version(cube.name())?;
        let version = match (as_of, latest) {
            (Some(v), _) => v,
            (None, Some(v)) => v,
            (None, None) => return Err(self.empty_cube(cube.name())),
        };
        let mut route = Route {
            cube: cube.name().to_owned(),
            version,
            rollup: None,
            rollup_file: None,
            verdicts: Vec::new(),
            finest_grain: false,
            engine: None,
        };
        if mode != RollupUse::Never && latest.is_some_and(|l| version <= l) {
            let stored = self.warehouse().stored_rollups(cube.name(), version)?;
            let mut available = Vec::new();
            let mut unbuilt = Vec::new();
            for r in cube.rollups() {
                let fingerprint = self.fingerprint(cube, r)?;
                match stored.iter().find(|s| s.name == r.name() && s.fingerprint == fingerprint) {
                    Some(s) => available.push((r, s.rows, s.clone())),
                    None => unbuilt.push(r.name().to_owned()),
                }
            }
            let candidates: Vec<(&Rollup, u64)> = available.iter().map(|(r, rows, _)| (*r, *rows)).collect();
            let Routing { chosen, verdicts } = rollup::route(plan, &candidates);
            route.verdicts = verdicts.into_iter().map(|(name, rows, v)| (name, Some(rows), v.err())).collect();
            for name in unbuilt {
                // `kubus rollups --build` builds for the latest version only; an earlier one's may have been removed.
                let why = if latest == Some(version) {
                    format!(
                        "not built for version {version} with its current definition (kubus rollups --build {})",
                        cube.name()
                    )
                } else {
                    format!(
                        "not stored for version {version} with its current definition (rollups are kept for the latest \
                         {} version(s), [rollups] keep_versions)",
                        self.config().rollup_versions
                    )
                };
                route.verdicts.push((name, None, Some(why)));
            }
            if let Some(r) = chosen {
                let (_, _, stored) =
                    available.iter().find(|(x, _, _)| x.name() == r.name()).expect("chosen among the available");
                let table = self.rollup_table(session, cube.name(), stored).await?;
                route.rollup = Some(r.name().to_owned());
                route.rollup_file = Some(stored.file.clone());
                return Ok((rollup::at_rollup(plan, r), table, route));
            }
        }
        if mode == RollupUse::Only {
            return Err(Error::NoRollup { cube: cube.name().to_owned(), reasons: route.describe(mode) });
        }
        let (table, version, bytes) = self.facts_sized(session.get()?, cube.name(), as_of).await?;
        route.version = version;
        let engine = self.cluster().map(|(cluster, local_below)| Engine::choose(cluster, local_below, bytes, &*table));
        let ctx = match engine.as_ref().filter(|e| e.remote) {
            Some(e) => session.remote(&e.cluster)?,
            None => session.get()?,
        };
        route.engine = engine;
        // A query that would read the facts once per grain reads them once, at its finest grain.
        if let Some(finest) = rollup::finest_grain(plan).filter(|_| !options.per_grain) {
            let frame = rollup::build_finest_grain(ctx, self.model(), plan, &finest, table)?;
            let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
            let collect = async { Ok(frame.collect().await?) };
            let cells = on_cluster(Some(&route), self.cluster_timeout(), ctx, collect).await?;
            let table =
                datafusion::datasource::MemTable::try_new(schema, vec![cells]).map_err(kubus_query::Error::from)?;
            route.finest_grain = true;
            return Ok((rollup::at_rollup(plan, &finest), std::sync::Arc::new(table), route));
        }
        Ok((plan.clone(), table, route))
    }
}
