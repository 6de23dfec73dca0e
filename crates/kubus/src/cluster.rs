//! Cube queries on an Apache Ballista cluster: the scheduler and executor processes (`kubus scheduler`, `kubus
//! executor`), built on Ballista's crates with kubus's functions, and the session that sends a cube plan to the
//! scheduler. A plan travels as DataFusion's protobuf; kubus's own functions travel with what they compute with
//! (`kubus_query::wire`), the in-memory tables a plan holds (member tables, cells aggregated once) as Arrow IPC.
//! The facts are Parquet listing tables of the Delta snapshot's files, which every process reads itself: from the
//! same disk on one machine, from the warehouse's bucket on many (each process opens the project for its
//! `[storage]` settings; no credential travels with a plan).

use crate::{Error, Result};
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use ballista_executor::execution_engine::QueryStageExecutor;
use ballista_scheduler::config::SchedulerConfig;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::{SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx;
use datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx;
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use kubus_warehouse::Warehouse;
use std::net::SocketAddr;
use std::sync::Arc;

type DfResult<T> = datafusion::common::Result<T>;

/// What an in-memory table's bytes start with (another table provider is Ballista's to encode).
const MEMORY_TABLE: &[u8] = b"kubus-memory-table\n";

/// The methods of both codecs that carry kubus's functions (`kubus_query::wire`); DataFusion's own travel by name
/// (no bytes), and a function that arrives with bytes is kubus's.
macro_rules! kubus_functions {
    () => {
        fn try_decode_udf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<ScalarUDF>> {
            kubus_query::wire::decode_scalar(name, buf)
        }

        fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            buf.extend(kubus_query::wire::encode_scalar(node)?.unwrap_or_default());
            Ok(())
        }

        fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> DfResult<Arc<AggregateUDF>> {
            kubus_query::wire::decode_aggregate(name, buf)
        }

        fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> DfResult<()> {
            buf.extend(kubus_query::wire::encode_aggregate(node)?.unwrap_or_default());
            Ok(())
        }
    };
}

/// The logical codec of every kubus process: Ballista's, with kubus's functions and in-memory tables.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(&self, buf: &[u8], inputs: &[LogicalPlan], ctx: &TaskContext) -> DfResult<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> DfResult<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: datafusion::arrow::datatypes::SchemaRef,
        ctx: &TaskContext,
    ) -> DfResult<Arc<dyn TableProvider>> {
        match buf.strip_prefix(MEMORY_TABLE) {
            Some(ipc) => Ok(Arc::new(memory_table(ipc, schema)?)),
            None => self.ballista.try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> DfResult<()> {
        match node.downcast_ref::<MemTable>() {
            Some(table) => {
                buf.extend_from_slice(MEMORY_TABLE);
                write_memory_table(table, buf)
            }
            None => self.ballista.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(&self, buf: &[u8], ctx: &TaskContext) -> DfResult<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(&self, buf: &mut Vec<u8>, node: Arc<dyn FileFormatFactory>) -> DfResult<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    kubus_functions!();
}

/// The physical codec of every kubus process: Ballista's (its shuffles), with kubus's functions.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.ballista.try_decode(buf, inputs, ctx, converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        self.ballista.try_encode(node, buf, converter)
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        ctx: &PhysicalExprDecodeCtx<'_>,
    ) -> DfResult<Arc<dyn PhysicalExpr>> {
        self.ballista.try_decode_expr(buf, inputs, ctx)
    }

    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        buf: &mut Vec<u8>,
        ctx: &PhysicalExprEncodeCtx<'_>,
    ) -> DfResult<()> {
        self.ballista.try_encode_expr(node, buf, ctx)
    }

    kubus_functions!();
}

fn write_memory_table(table: &MemTable, buf: &mut Vec<u8>) -> DfResult<()> {
    let mut writer = StreamWriter::try_new(buf, &table.schema())?;
    for partition in &table.batches {
        let batches = partition
            .try_read()
            .map_err(|_| DataFusionError::Internal("an in-memory table is being written to".into()))?;
        for batch in batches.iter() {
            writer.write(batch)?;
        }
    }
    writer.finish()?;
    Ok(())
}

fn memory_table(ipc: &[u8], schema: datafusion::arrow::datatypes::SchemaRef) -> DfResult<MemTable> {
    let batches = StreamReader::try_new(ipc, None)?.collect::<Result<Vec<_>, _>>()?;
    MemTable::try_new(schema, vec![batches])
}

/// A session whose plans run on the cluster whose scheduler listens at `address` (`host:port`). Nothing is sent
/// before a plan runs.
pub(crate) fn session(address: &str) -> Result<SessionContext> {
    let config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
        .with_ballista_job_name("kubus cube query")
        // Ballista 55's adaptive planner runs a global aggregate in a union (a query's grand total beside its other
        // grains) once per partition of the union's stage: the total came back 17 and 33 times. The static one does
        // not.
        .with_ballista_adaptive_query_planner(false)
        // A client that asks for its job's state learns the job's id when the scheduler accepts it; one that waits
        // to be told learns it with the job's first finished task only, and could not cancel a job that never ran
        // a task. The price: the answer is seen up to 50 ms after the job ends.
        .set_bool(ballista_core::config::BALLISTA_CLIENT_PULL, true);
    let state = SessionStateBuilder::new().with_default_features().with_config(config).build();
    let state = state.upgrade_for_ballista(format!("http://{address}")).map_err(kubus_query::Error::from)?;
    let jobs = Arc::new(Jobs::default());
    let planner = Arc::new(Recording { ballista: state.query_planner().clone(), jobs: jobs.clone() });
    let mut state = SessionStateBuilder::new_from_existing(state).with_query_planner(planner).build();
    state.config_mut().set_extension(jobs);
    Ok(SessionContext::new_with_state(state))
}

/// The plans a session sent to the cluster, each holding the scheduler's id of its job once it was accepted.
#[derive(Debug, Default)]
struct Jobs(std::sync::Mutex<Vec<Arc<dyn ExecutionPlan>>>);

/// Ballista's query planner, keeping each plan it makes in [`Jobs`]: the client of a job is the only one who knows
/// its id, and a question given up on must not leave its job running on the cluster.
#[derive(Debug)]
struct Recording {
    ballista: Arc<dyn QueryPlanner + Send + Sync>,
    jobs: Arc<Jobs>,
}

#[async_trait::async_trait]
impl QueryPlanner for Recording {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let planned = self.ballista.create_physical_plan(plan, session).await?;
        self.jobs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(planned.clone());
        Ok(planned)
    }
}

/// Cancels on the scheduler at `address` the jobs that `ctx` (a [`session`]) sent it; says which, or why it could
/// not.
pub(crate) async fn cancel_jobs(ctx: &SessionContext, address: &str) -> std::result::Result<Vec<String>, String> {
    use ballista_core::execution_plans::DistributedQueryExec;
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use datafusion::common::tree_node::{TreeNode as _, TreeNodeRecursion};
    let Some(jobs) = ctx.state().config().get_extension::<Jobs>() else { return Ok(Vec::new()) };
    let plans = jobs.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let mut ids = Vec::new();
    for plan in plans {
        plan.apply(|node| {
            let distributed = node.downcast_ref::<DistributedQueryExec<LogicalPlanNode>>();
            if let Some(job) = distributed.and_then(DistributedQueryExec::job_id) {
                ids.push(String::from(job));
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| e.to_string())?;
    }
    if ids.is_empty() {
        return Ok(ids);
    }
    let mut scheduler = SchedulerGrpcClient::connect(format!("http://{address}")).await.map_err(|e| e.to_string())?;
    for job_id in &ids {
        scheduler.cancel_job(CancelJobParams { job_id: job_id.clone() }).await.map_err(|e| e.message().to_owned())?;
    }
    Ok(ids)
}

/// A cluster process's runtime: DataFusion's, with the warehouse's bucket registered (the facts' files are read
/// where the plan runs).
fn runtime(warehouse: &Warehouse) -> DfResult<Arc<RuntimeEnv>> {
    let runtime = RuntimeEnvBuilder::new().build()?;
    warehouse.register_object_store(&runtime).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(Arc::new(runtime))
}

/// How long an executor may stay silent before the scheduler gives its tasks to others, and how often executors
/// report: short, so that a query on a lost executor fails over in seconds (Ballista's defaults are minutes).
const EXECUTOR_TIMEOUT_SECONDS: u64 = 10;
const HEARTBEAT_SECONDS: u64 = 2;

/// Runs a Ballista scheduler on `listener` until the process ends, with kubus's codecs; its sessions read the
/// facts from the project's warehouse (listing their files while planning).
pub async fn run_scheduler(listener: tokio::net::TcpListener, project: &crate::Project) -> Result<()> {
    let start = |source: Box<dyn std::error::Error + Send + Sync>| Error::Cluster {
        what: "start the scheduler".into(),
        source,
    };
    let address = listener.local_addr().map_err(|e| start(Box::new(e)))?;
    // One runtime for every session: one client of the warehouse's bucket, whose connections they share.
    let runtime = runtime(project.warehouse()).map_err(|e| start(Box::new(e)))?;
    let builder: ballista_scheduler::scheduler_server::SessionBuilder = Arc::new(move |config: SessionConfig| {
        let state = ballista_core::utils::default_session_builder(config)?;
        Ok(SessionStateBuilder::new_from_existing(state).with_runtime_env(runtime.clone()).build())
    });
    let mut config = SchedulerConfig::default()
        .with_hostname(address.ip().to_string())
        .with_port(address.port())
        .with_override_session_builder(builder)
        .with_remove_executor_wait_secs(0)
        .with_no_executors_grace_period_seconds(EXECUTOR_TIMEOUT_SECONDS);
    config.bind_host = address.ip().to_string();
    config.executor_timeout_seconds = EXECUTOR_TIMEOUT_SECONDS;
    config.expire_dead_executor_interval_seconds = HEARTBEAT_SECONDS;
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    let config = Arc::new(config);
    let failed = |source: ballista_core::error::BallistaError| Error::Cluster {
        what: "run the scheduler".into(),
        source: Box::new(source),
    };
    config.validate().map_err(failed)?;
    let cluster = ballista_scheduler::cluster::BallistaCluster::new_from_config(&config).await.map_err(failed)?;
    let scheduler =
        ballista_scheduler::scheduler_process::create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
            .await
            .map_err(failed)?;
    ballista_scheduler::scheduler_process::start_grpc_service_with_listener(listener, scheduler).await.map_err(failed)
}

/// Ballista's execution engine, whose tasks report no operator metrics: Ballista 55's scheduler adds a task's up
/// per stage and refuses the report of a task whose plan has another number of operators than the stage's first
/// task's (it does happen), and a refused report leaves the query waiting for that task for ever.
struct Engine(ballista_executor::execution_engine::DefaultExecutionEngine);

impl ballista_executor::execution_engine::ExecutionEngine for Engine {
    fn create_query_stage_exec(
        &self,
        job_id: ballista_core::JobId,
        stage_id: usize,
        task_id: usize,
        partitions: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> DfResult<Arc<dyn QueryStageExecutor>> {
        let stage = self.0.create_query_stage_exec(job_id, stage_id, task_id, partitions, plan, work_dir, config)?;
        Ok(Arc::new(WithoutMetrics(stage)))
    }
}

/// A stage that reports everything but its operators' metrics (see [`Engine`]).
#[derive(Debug)]
struct WithoutMetrics(Arc<dyn QueryStageExecutor>);

impl std::fmt::Display for WithoutMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for WithoutMetrics {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<Vec<ballista_core::serde::protobuf::ShuffleWritePartition>> {
        self.0.execute_query_stage(task_id, context).await
    }

    fn collect_plan_metrics(&self) -> Vec<datafusion::physical_plan::metrics::MetricsSet> {
        Vec::new()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<ballista_core::serde::protobuf::RuntimeStatsReport> {
        self.0.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> DfResult<Vec<ballista_core::serde::protobuf::WindowStateReport>> {
        self.0.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<ballista_core::serde::protobuf::TaskColumnStats> {
        self.0.collect_column_stats()
    }
}

/// Where an executor listens and whom it serves.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `host:port`.
    pub scheduler: SocketAddr,
    /// The address its two services listen on.
    pub bind: std::net::IpAddr,
    /// The port of its Arrow Flight service (shuffle data and answers).
    pub flight_port: u16,
    /// The port of its gRPC service (tasks).
    pub grpc_port: u16,
    /// Tasks it runs at once.
    pub cores: usize,
    /// Its folder for shuffle files.
    pub work: Option<std::path::PathBuf>,
}

/// Runs a Ballista executor until the process ends or the scheduler stops it, with kubus's codecs; its tasks read
/// the facts from the project's warehouse.
pub async fn run_executor(options: ExecutorOptions, project: &crate::Project) -> Result<()> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    let failed = |source| Error::Cluster { what: "run the executor".into(), source };
    // Without Ballista's pool of connections to other executors (not public): a shuffle fetch opens its own.
    let engine = ballista_executor::execution_engine::DefaultExecutionEngine::new();
    // One runtime for every task (Ballista would make one per task): one client of the warehouse's bucket, whose
    // connections the tasks share.
    let runtime = runtime(project.warehouse()).map_err(|e| failed(Box::new(e)))?;
    let producer: ballista_core::RuntimeProducer = Arc::new(move |_: &SessionConfig| Ok(runtime.clone()));
    let config = ExecutorProcessConfig {
        bind_host: options.bind.to_string(),
        external_host: Some(options.bind.to_string()),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: options.cores,
        work_dir: options.work.map(|w| w.display().to_string()),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_runtime_producer: Some(producer),
        override_execution_engine: Some(Arc::new(Engine(engine))),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await.map_err(|e| failed(Box::new(e)))
}
