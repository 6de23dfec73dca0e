//! The `kubus` command line: argument parsing (clap), terminal output, progress and exit codes — nothing else.
//! All work is done by the `kubus` library. `run` takes the arguments and the output streams, so tests drive
//! the CLI in-process.

mod render;

use anyhow::Context;
use clap::{Parser, Subcommand};
use kubus::output::Table;
use kubus::{FileCounts, FileOutcome, KeyOrigin, Project, Query, TOTAL_COLUMN};
use render::OutputFormat;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code for bad input: arguments, schemas, files, queries the user can fix.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for internal failures.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "kubus",
    version,
    about = "A data cube engine for city administrations: office exports in, monitoring numbers out."
)]
struct Cli {
    /// The project directory (with kubus.toml).
    #[arg(long, short = 'C', global = true, default_value = ".")]
    project: PathBuf,
    /// Ask as this role of kubus.toml (without one, the most restrictive default applies).
    #[arg(long, global = true)]
    role: Option<String>,
    /// Where cube queries over the facts run: `ballista://HOST:PORT` (a `kubus scheduler`) or `local`, instead of
    /// `[engine] cluster` of kubus.toml. Rollups and small facts are always read here.
    #[arg(long, global = true, value_name = "ballista://HOST:PORT|local")]
    engine: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate every schema file and list all problems at once.
    Check,
    /// Ingest office exports through a source mapping into the warehouse (one atomic commit).
    Ingest {
        /// Source name (see cube-schemas/sources/).
        source: String,
        /// Files or directories (every file inside, sorted).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Show the first mapped facts and every rejected line; commit nothing, leave the quarantine alone.
        #[arg(long)]
        dry_run: bool,
        /// Pseudonymise with the project's demo key when no real key is set (synthetic sample data only).
        #[arg(long)]
        demo_key: bool,
        /// A value the files do not hold, for a field of the source that reads `@set`: `--set year=2023`.
        #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = given)]
        set: Vec<(String, String)>,
    },
    /// List the rejected lines in quarantine, with their reasons.
    Quarantine {
        /// Only this source.
        source: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Ask a cube query.
    Query(QueryArgs),
    /// Run read-only SQL over one view per cube (with member labels).
    Sql {
        /// A single SELECT query.
        sql: String,
        /// Read a cube at an earlier version: CUBE=VERSION (repeatable); other cubes are read at their latest.
        #[arg(long, value_parser = parse_as_of)]
        as_of: Vec<(String, u64)>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List a dimension's members: level, key, labels, aliases and parents.
    Members {
        /// Dimension name (see cube-schemas/dimensions/).
        dimension: String,
        /// Only this level.
        #[arg(long, short = 'l')]
        level: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show how a cube query is computed: the rollup chosen (and why each other one does not answer), levels,
    /// cuts, measures and grains in cube terms, then DataFusion's plan.
    Explain(QueryArgs),
    /// List the cubes' rollups and whether each is built for the latest facts version; --build builds the missing.
    Rollups {
        /// Only this cube.
        cube: Option<String>,
        /// Build the rollups that are not stored for the latest version with their current definition.
        #[arg(long)]
        build: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Reports: `kubus report run <name> --period 2024-06 --out DIR`.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Run the reports whose schedule is due, until stopped (SIGTERM or Ctrl-C finish the current run first).
    Schedule {
        /// Folder reports are written to; the run log is <out>/schedule.jsonl.
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Runs missed while the scheduler was not running: the latest, all of them, or none.
        #[arg(long, value_enum, default_value_t = CatchUpArg::Last)]
        catch_up: CatchUpArg,
        /// One pass, then exit.
        #[arg(long)]
        once: bool,
        /// Act as if it were this moment (RFC 3339, e.g. 2024-07-01T06:00:00Z); implies --once.
        #[arg(long)]
        at: Option<String>,
    },
    /// Rebuild the warehouse from the sample exports and run example queries.
    Demo,
    /// Serve the project over HTTP: the caller's identity (token or single sign-on) decides its role.
    Serve {
        /// Listen here instead of `[server] listen` of kubus.toml (e.g. 0.0.0.0:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Serve SQL over the PostgreSQL wire protocol here (roles with `sql = true`; psql, DBeaver, Metabase),
        /// instead of `[server] sql_listen` of kubus.toml.
        #[arg(long)]
        sql_listen: Option<std::net::SocketAddr>,
        /// Pseudonymise uploads with the project's demo key when no real key is set (synthetic sample data only).
        #[arg(long)]
        demo_key: bool,
    },
    /// Run a Ballista scheduler for cube queries on a cluster of `kubus executor`s (`--engine ballista://HOST:PORT`
    /// or `[engine] cluster` send queries to it).
    Scheduler {
        /// Listen here (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: std::net::SocketAddr,
    },
    /// Run a Ballista executor for a `kubus scheduler`: it reads the facts from the project's warehouse itself.
    Executor {
        /// The scheduler's address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: std::net::SocketAddr,
        /// The address its services listen on (and that the scheduler and other executors reach it at).
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Port of its Arrow Flight service, which hands out shuffled data and answers (0: a free one).
        #[arg(long, default_value_t = 0)]
        flight_port: u16,
        /// Port of its gRPC service, which takes tasks (0: a free one).
        #[arg(long, default_value_t = 0)]
        grpc_port: u16,
        /// Tasks it runs at once (default: this machine's cores).
        #[arg(long)]
        cores: Option<usize>,
        /// Its folder for shuffle files (default: a temporary one).
        #[arg(long)]
        work: Option<PathBuf>,
    },
    /// Users of `kubus serve`: `kubus user add NAME --group G`, `kubus user list`.
    #[command(subcommand)]
    User(UserCommand),
    /// Tokens of `kubus serve`: `kubus token create USER` prints a new token once.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show how the warehouse records its protection against this project file; --adopt records the project file's.
    Protection {
        /// Make the warehouse record this project file's protection, also a weaker one (an intended change).
        #[arg(long)]
        adopt: bool,
    },
    /// Generate a perturbation table for the cell key method (maximum entropy, mean 0) and show its noise.
    Ptable {
        /// The largest noise D: a count changes by at most this much.
        #[arg(long, default_value_t = 3)]
        max_noise: u32,
        /// The noise's variance V for large counts.
        #[arg(long, default_value_t = 2.0)]
        variance: f64,
        /// Counts from 1 to this are never published (they become 0 or larger); 0 allows every value.
        #[arg(long, default_value_t = 2)]
        small: u32,
        /// Number of cell keys (a power of two).
        #[arg(long, default_value_t = 256)]
        keys: u32,
        /// Write the table here (CSV: pcv, ckey, pvalue); without it only the noise per value is shown.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CatchUpArg {
    Last,
    All,
    Skip,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user (the name the city's single sign-on sends, or any name for token-only users).
    Add {
        /// User name.
        name: String,
        /// A group of kubus.toml [groups] (repeatable); the groups decide the user's role.
        #[arg(long = "group", short = 'g')]
        groups: Vec<String>,
    },
    /// List the users, their groups, role and tokens (by id).
    List,
    /// Remove a user and its tokens.
    Remove {
        /// User name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token for a user and print it (only its hash is kept: it cannot be shown again).
    Create {
        /// User name.
        user: String,
    },
    /// Revoke one of a user's tokens by its id (see `kubus user list`); a running server refuses it at once.
    Revoke {
        /// User name.
        user: String,
        /// The token's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Run a report for a period and write HTML, Markdown, XLSX, and per table CSV and JSON-stat.
    Run {
        /// Report name (see cube-schemas/reports/).
        name: String,
        /// The month reported on, e.g. 2024-06.
        #[arg(long)]
        period: String,
        /// Folder to write into (the report lands in <out>/<name>_<period>/).
        #[arg(long, default_value = "reports")]
        out: PathBuf,
        /// Read a cube at an earlier version: CUBE=VERSION (repeatable), to reproduce an earlier run.
        #[arg(long, value_parser = parse_as_of)]
        as_of: Vec<(String, u64)>,
    },
}

#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, short = 'f', value_parser = OutputFormat::parser(), default_value = "table")]
    format: OutputFormat,
    /// Write the output to this file instead of standard output.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    /// Cube name (omit with --json).
    cube: Option<String>,
    /// Measures.
    #[arg(long = "measure", short = 'm')]
    measures: Vec<String>,
    /// Drilldowns: dimension, dimension.level, or a level name.
    #[arg(long = "drilldown", short = 'd')]
    drilldowns: Vec<String>,
    /// Cuts: level=value, level=a,b, level!=value, level=from..to, level<value (by key, label or alias).
    #[arg(long = "cut", short = 'c')]
    cuts: Vec<String>,
    /// Add subtotals and a grand total.
    #[arg(long)]
    totals: bool,
    /// Order by a measure; prefix with - for descending.
    #[arg(long, allow_hyphen_values = true)]
    order: Vec<String>,
    /// At most this many rows.
    #[arg(long)]
    limit: Option<usize>,
    /// The whole query as JSON (the library's query model) instead of the options above.
    #[arg(long, conflicts_with_all = ["cube", "measures", "drilldowns", "cuts", "totals", "order", "limit"])]
    json: Option<String>,
    /// Read this warehouse version instead of the latest.
    #[arg(long)]
    as_of: Option<u64>,
    /// Answer from the facts even when a rollup could answer.
    #[arg(long)]
    no_rollups: bool,
    /// Answer only from rollups: a query that no rollup answers is an error instead of a scan of the facts.
    #[arg(long, conflicts_with = "no_rollups")]
    rollups_only: bool,
    #[command(flatten)]
    output: OutputArgs,
}

impl QueryArgs {
    fn options(&self, role: Option<String>) -> kubus::QueryOptions {
        let rollups = match (self.no_rollups, self.rollups_only) {
            (true, _) => kubus::RollupUse::Never,
            (_, true) => kubus::RollupUse::Only,
            _ => kubus::RollupUse::Prefer,
        };
        kubus::QueryOptions { as_of: self.as_of, role, rollups, ..Default::default() }
    }
}

/// A user mistake: reported with exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Usage(String);

/// Runs the CLI with `args` (including the program name) and returns the process exit code.
pub fn run(args: impl IntoIterator<Item = String>, stdout: &mut dyn Write, stderr: &mut dyn Write) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            let _ = if e.use_stderr() { stderr.write_all(text.as_bytes()) } else { stdout.write_all(text.as_bytes()) };
            return ExitCode::from(if e.use_stderr() { EXIT_BAD_INPUT } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(dispatch(cli, stdout, stderr)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went away (`kubus query … | head`): as for any filter, that ends the run.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e}");
            let mut said = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                // Some errors say their cause in their own message (object_store's, hyper's): once is enough.
                if !said.contains(&cause) {
                    let _ = writeln!(stderr, "  caused by: {cause}");
                }
                said = cause;
            }
            let user = e.downcast_ref::<Usage>().is_some()
                || e.downcast_ref::<kubus::Error>().is_some_and(kubus::Error::is_user_error);
            ExitCode::from(if user { EXIT_BAD_INPUT } else { EXIT_FAILURE })
        }
    }
}

/// The project, with the engine `--engine` names.
fn open(dir: &Path, engine: Option<&str>) -> anyhow::Result<Project> {
    let project = Project::open(dir)?;
    Ok(match engine {
        Some(url) => project.with_engine(url)?,
        None => project,
    })
}

/// Logs to standard error at `KUBUS_LOG` (default: warnings, and `default` besides).
fn log_to_stderr(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KUBUS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,{default}"))),
        )
        .try_init();
}

/// A port of `host` that is free now (the OS's choice).
fn free_port(host: std::net::IpAddr) -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind((host, 0))?.local_addr()?.port())
}

async fn dispatch(cli: Cli, stdout: &mut dyn Write, stderr: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Check => check(&cli.project, stdout),
        Command::Ingest { source, files, dry_run, demo_key, set } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let files = project.expand_inputs(&files)?;
            let given = set.into_iter().collect();
            if dry_run {
                let options = kubus::IngestOptions { demo_key, role: cli.role.clone(), given, ..Default::default() };
                return dry_run_ingest(&project, &source, &files, options, stdout).await;
            }
            ingest(
                &project,
                &source,
                &files,
                kubus::IngestOptions { demo_key, role: cli.role.clone(), given, ..Default::default() },
                stdout,
                stderr,
            )
            .await
            .map(|_| ())
        }
        Command::Quarantine { source, output } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let rows = project.quarantine(source.as_deref(), cli.role.as_deref())?;
            if output.format == OutputFormat::Table && output.out.is_none() {
                let mut counts: Vec<(String, String, usize)> = Vec::new();
                for (s, r) in &rows {
                    match counts.iter_mut().find(|(cs, cp, _)| cs == s && *cp == r.problem) {
                        Some(c) => c.2 += 1,
                        None => counts.push((s.clone(), r.problem.clone(), 1)),
                    }
                }
                writeln!(stdout, "{} line(s) in quarantine", rows.len())?;
                for (s, p, n) in counts {
                    writeln!(stdout, "  {s}: {n} {p}")?;
                }
                if rows.is_empty() {
                    return Ok(());
                }
            }
            let batch = kubus::quarantine_batch(&rows)?;
            emit(&project, &output, &Table::plain("Quarantäne", batch.schema(), vec![batch]), &|_| false, stdout)
        }
        Command::Query(args) => {
            query(&open(&cli.project, cli.engine.as_deref())?, args, cli.role.clone(), stdout).await
        }
        Command::Sql { sql, as_of, output } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let batches = project.sql(&sql, &kubus::SqlOptions { as_of, role: cli.role.clone() }).await?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .unwrap_or_else(|| std::sync::Arc::new(kubus::arrow::datatypes::Schema::empty()));
            emit(&project, &output, &Table::plain("SQL", schema, batches), &|_| false, stdout)
        }
        Command::Members { dimension, level, output } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let batch = project.members(&dimension, level.as_deref(), cli.role.as_deref())?;
            emit(&project, &output, &Table::plain(dimension, batch.schema(), vec![batch]), &|_| false, stdout)
        }
        Command::Explain(args) => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let query = build_query(&args)?;
            write!(stdout, "{}", project.explain(&query, &args.options(cli.role.clone())).await?)?;
            Ok(())
        }
        Command::Rollups { cube, build, output } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            if build {
                let cubes: Vec<String> = match &cube {
                    Some(c) => vec![c.clone()],
                    None => project
                        .model()
                        .cubes()
                        .filter(|c| !c.rollups().is_empty())
                        .map(|c| c.name().to_owned())
                        .collect(),
                };
                for c in cubes {
                    project.build_rollups(&c).await?;
                    print_pruned(&project.prune_rollups(&c)?, stdout)?;
                }
            }
            rollup_table(&project, &project.rollup_status(cube.as_deref())?, &output, stdout)
        }
        Command::Report(ReportCommand::Run { name, period, out, as_of }) => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let options = kubus::ReportOptions { period, role: cli.role.clone(), as_of };
            let (run, files) = project.run_report(&name, &options, &out).await?;
            writeln!(
                stdout,
                "{} — data: {}; {} cell(s) suppressed",
                run.document.title, run.document.provenance, run.suppressed
            )?;
            for f in files {
                writeln!(stdout, "  {}", f.display())?;
            }
            Ok(())
        }
        Command::Schedule { out, catch_up, once, at } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let catch_up = match catch_up {
                CatchUpArg::Last => kubus::CatchUp::Last,
                CatchUpArg::All => kubus::CatchUp::All,
                CatchUpArg::Skip => kubus::CatchUp::Skip,
            };
            let options = kubus::ScheduleOptions { out, catch_up };
            if let Some(at) = at {
                let now = chrono::DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| Usage(format!("--at '{at}': {e}")))?
                    .with_timezone(&chrono::Utc);
                return print_runs(&project.schedule_tick(now, &options).await?, stdout);
            }
            schedule(&project, &options, once, stdout, stderr).await
        }
        Command::Demo => demo(&cli.project, stdout, stderr).await,
        Command::Serve { .. } | Command::User(_) | Command::Token(_) if cli.role.is_some() => Err(Usage(
            "--role does not apply here: on the server the identity (token or single sign-on) decides the role".into(),
        )
        .into()),
        Command::Scheduler { .. } | Command::Executor { .. } if cli.role.is_some() || cli.engine.is_some() => {
            Err(Usage("--role and --engine do not apply here: a cluster process runs what its scheduler sends".into())
                .into())
        }
        Command::Scheduler { listen } => {
            // kubus's executors report no operator metrics (see kubus::cluster), which this module of Ballista's
            // warns about for every stage of every job.
            log_to_stderr("ballista_scheduler::state::execution_stage=error");
            let project = Project::open(&cli.project)?;
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr()?;
            writeln!(
                stdout,
                "kubus scheduler: Ballista scheduler on ballista://{address} for the warehouse {} (executors: kubus \
                 executor --scheduler {address}; SIGTERM or Ctrl-C stop)",
                project.warehouse_location()
            )?;
            stdout.flush()?;
            tokio::select! {
                run = kubus::cluster::run_scheduler(listener, &project) => Ok(run?),
                () = kubus_server::shutdown_signal() => Ok(()),
            }
        }
        Command::Executor { scheduler, bind, flight_port, grpc_port, cores, work } => {
            log_to_stderr("");
            let project = Project::open(&cli.project)?;
            let flight_port = if flight_port == 0 { free_port(bind)? } else { flight_port };
            let grpc_port = if grpc_port == 0 { free_port(bind)? } else { grpc_port };
            let cores = cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let options = kubus::cluster::ExecutorOptions { scheduler, bind, flight_port, grpc_port, cores, work };
            writeln!(
                stdout,
                "kubus executor: {cores} task(s) at once for the scheduler at {scheduler}; Arrow Flight on \
                 {bind}:{flight_port}, tasks on {bind}:{grpc_port}; warehouse {}",
                project.warehouse_location()
            )?;
            stdout.flush()?;
            Ok(kubus::cluster::run_executor(options, &project).await?)
        }
        Command::Serve { listen, sql_listen, demo_key } => {
            log_to_stderr("kubus_server=info");
            let project = open(&cli.project, cli.engine.as_deref())?;
            let options = kubus_server::Options { listen, sql_listen, demo_key };
            let server = kubus_server::Server::bind(project, options).await?;
            writeln!(
                stdout,
                "kubus serve: listening on http://{}/api/v1 (SIGTERM or Ctrl-C stop)",
                server.local_addr()
            )?;
            if let Some(sql) = server.sql_addr() {
                writeln!(stdout, "kubus serve: SQL over the PostgreSQL wire protocol on {sql} (password: a token)")?;
            }
            stdout.flush()?;
            server.run(kubus_server::shutdown_signal()).await?;
            Ok(())
        }
        Command::User(UserCommand::Add { name, groups }) => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            project.add_user(&name, &groups)?;
            let user = kubus::User { groups: groups.clone(), tokens: Vec::new() };
            let identity = project.identity(&name, &user)?;
            writeln!(
                stdout,
                "user {name} added (groups: {}; role: {}); give it a token with `kubus token create {name}`",
                if groups.is_empty() { "none".to_owned() } else { groups.join(", ") },
                identity.role.as_deref().unwrap_or("the most restrictive default")
            )?;
            Ok(())
        }
        Command::User(UserCommand::List) => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let users = project.users()?;
            let mut grid = comfy_table::Table::new();
            grid.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
            grid.set_header(["user", "groups", "role", "tokens (id, created)"]);
            for (name, user) in &users.users {
                let role = match project.identity(name, user) {
                    Ok(identity) => identity.role.unwrap_or_else(|| "(default)".into()),
                    Err(e) => format!("refused: {e}"),
                };
                let tokens: Vec<String> = user.tokens.iter().map(|t| format!("{} {}", t.id, t.created)).collect();
                grid.add_row([name.clone(), user.groups.join(", "), role, tokens.join("\n")]);
            }
            writeln!(stdout, "{grid}")?;
            writeln!(
                stdout,
                "({} user{}; file {})",
                users.users.len(),
                if users.users.len() == 1 { "" } else { "s" },
                project.users_path().display()
            )?;
            Ok(())
        }
        Command::User(UserCommand::Remove { name }) => {
            open(&cli.project, cli.engine.as_deref())?.remove_user(&name)?;
            writeln!(stdout, "user {name} removed, with its tokens")?;
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { user, id }) => {
            open(&cli.project, cli.engine.as_deref())?.revoke_token(&user, &id)?;
            writeln!(stdout, "token {id} of {user} revoked")?;
            Ok(())
        }
        Command::Token(TokenCommand::Create { user }) => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            let token = project.create_token(&user)?;
            writeln!(stdout, "{token}")?;
            writeln!(
                stderr,
                "token for {user}: shown only now; kubus keeps its hash in {}",
                project.users_path().display()
            )?;
            Ok(())
        }
        Command::Protection { adopt: true } => {
            let (before, now) = Project::adopt_protection(&cli.project)?;
            writeln!(stdout, "the warehouse now records: {}", serde_json::to_string(&now)?)?;
            if let Some(before) = before {
                writeln!(stdout, "it recorded before: {}", serde_json::to_string(&before)?)?;
            }
            Ok(())
        }
        Command::Protection { adopt: false } => {
            let project = open(&cli.project, cli.engine.as_deref())?;
            writeln!(stdout, "the warehouse records: {}", serde_json::to_string(&project.recorded_protection()?)?)?;
            writeln!(
                stdout,
                "this project file asks for the same or stricter: {}",
                serde_json::to_string(&project.protection_record())?
            )?;
            Ok(())
        }
        Command::Ptable { max_noise, variance, small, keys, out } => {
            let table =
                kubus::PTable::generate(&kubus::PTableParams { max_noise, variance, small, keys }).map_err(Usage)?;
            writeln!(stdout, "value  noise: probability")?;
            // The last row holds for every larger count.
            let last = small + max_noise + 1;
            for value in 1..=last {
                let dist: Vec<String> =
                    table.distribution(value).iter().map(|(d, p)| format!("{d:+}: {p:.4}")).collect();
                let label = if value == last { format!("{value}+") } else { value.to_string() };
                writeln!(stdout, "{label:>5}  {}", dist.join("  "))?;
            }
            if let Some(path) = &out {
                std::fs::write(path, table.to_csv()).with_context(|| format!("cannot write {}", path.display()))?;
                writeln!(
                    stdout,
                    "written to {} ({} keys, fingerprint {})",
                    path.display(),
                    table.keys(),
                    table.fingerprint()
                )?;
            }
            Ok(())
        }
    }
}

fn check(dir: &Path, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let project = Project::open(dir)?;
    let model = project.model();
    writeln!(
        stdout,
        "ok: {} dimensions, {} cubes, {} sources in {}",
        model.dimensions().count(),
        model.cubes().count(),
        model.sources().count(),
        project.root().join(&project.config().schemas).display()
    )?;
    Ok(())
}

async fn ingest(
    project: &Project,
    source: &str,
    files: &[PathBuf],
    options: kubus::IngestOptions,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> anyhow::Result<kubus::IngestReport> {
    // Bytes of all files as the bar's length; the message counts lines and their rate. indicatif draws only
    // when stderr is a terminal.
    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_bar} {msg}")
            .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let (mut done_bytes, mut lines_before) = (0u64, 0usize);
    // The files read so far, to account for their lines also when the ingest is refused at its commit.
    let mut read: Vec<kubus::FileReport> = Vec::new();
    let report = project
        .ingest_with(source, files, options, &mut |p| match p {
            kubus::IngestProgress::Reading { path, lines, bytes, .. } => {
                bar.set_position(done_bytes + bytes);
                let all = lines_before + lines;
                let rate = all as f64 / started.elapsed().as_secs_f64().max(1e-3);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                bar.set_message(format!("{name}: {all} lines, {rate:.0} lines/s"));
            }
            kubus::IngestProgress::Done(report) => {
                done_bytes += std::fs::metadata(&report.path).map(|m| m.len()).unwrap_or(0);
                if let FileOutcome::Ingested(c) = &report.outcome {
                    lines_before += c.lines;
                }
                bar.set_position(done_bytes);
                read.push(report.clone());
            }
        })
        .await;
    bar.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        Err(e) => {
            if !read.is_empty() {
                writeln!(stdout, "source {source}: nothing committed; the files read were")?;
                print_files(&read, stdout)?;
            }
            return Err(e.into());
        }
    };
    if report.key_origin == Some(KeyOrigin::Demo) {
        writeln!(
            stderr,
            "note: pseudonymised with the DEMO key from kubus.toml — for the synthetic sample data only; set KUBUS_PSEUDONYM_KEY for real data"
        )?;
    }
    writeln!(stdout, "source {} → cube {}", report.source, report.cube)?;
    print_files(&report.files, stdout)?;
    let totals = report.totals();
    writeln!(stdout, "{}", accounting(&totals))?;
    let lines = totals.total_lines;
    if lines.checked() > 0 {
        // Each total line of the files against the sum of its detail facts.
        let within = match project.model().source(&report.source).ok().and_then(|s| s.total_tolerance()) {
            Some(tolerance) => format!("{} within {tolerance}, ", lines.within),
            None => String::new(),
        };
        writeln!(
            stdout,
            "totals checked: {} lines: {} exact, {within}{} mismatched",
            lines.checked(),
            lines.exact,
            lines.mismatched
        )?;
    } else if totals.totals_compared > 0 {
        writeln!(stdout, "totals checked: {} (on lines of facts)", totals.totals_compared)?;
    }
    const SHOWN: usize = 10;
    for w in totals.warnings.iter().take(SHOWN) {
        writeln!(stderr, "warning: {w}")?;
    }
    if totals.warnings.len() > SHOWN {
        writeln!(stderr, "warning: … and {} more", totals.warnings.len() - SHOWN)?;
    }
    if let Some(q) = &report.quarantine {
        writeln!(stdout, "quarantine: {} ({} lines from this ingest)", q.display(), report.rejected.len())?;
    }
    print_replaced(&report, stdout)?;
    match report.version {
        Some(v) => writeln!(stdout, "cube {} is at version {v}", report.cube)?,
        None => writeln!(stdout, "cube {} has no facts", report.cube)?,
    }
    if !report.rollups.is_empty() {
        let built: Vec<String> = report
            .rollups
            .iter()
            .map(|r| match r.merged_from {
                Some(v) => format!("{} ({} rows, merged from version {v})", r.name, r.rows),
                None => format!("{} ({} rows)", r.name, r.rows),
            })
            .collect();
        writeln!(stdout, "rollups for this version: {}", built.join(", "))?;
    }
    if let Some(problem) = &report.rollup_problem {
        writeln!(
            stderr,
            "warning: the rollups were not built, so queries read the facts until `kubus rollups --build {}` succeeds: {problem}",
            report.cube
        )?;
    }
    match &report.pruned {
        Ok(pruned) => print_pruned(pruned, stdout)?,
        Err(problem) => writeln!(stderr, "warning: the rollups of earlier versions were not removed: {problem}")?,
    }
    Ok(report)
}

/// What pruning the rollups of earlier versions removed, if anything.
fn print_pruned(pruned: &kubus::Pruned, stdout: &mut dyn Write) -> anyhow::Result<()> {
    if let (Some(first), Some(last)) = (pruned.versions.first(), pruned.versions.last()) {
        let (versions, them) = if first == last {
            (format!("version {first}"), "it")
        } else {
            (format!("versions {first}–{last}"), "them")
        };
        writeln!(
            stdout,
            "rollups of {versions} removed ({} files, {:.1} MB; [rollups] keep_versions = {}): queries as of {them} \
             read the facts",
            pruned.files,
            pruned.bytes as f64 / 1e6,
            pruned.keep
        )?;
    }
    Ok(())
}

fn build_query(args: &QueryArgs) -> anyhow::Result<Query> {
    if let Some(json) = &args.json {
        return serde_json::from_str(json).map_err(|e| Usage(format!("cannot read the query JSON: {e}")).into());
    }
    let cube = args.cube.clone().ok_or_else(|| Usage("name a cube, or give the query with --json".into()))?;
    let cuts = args.cuts.iter().map(|c| c.parse()).collect::<Result<Vec<_>, _>>().map_err(kubus::Error::from)?;
    let order = args.order.iter().map(|o| o.parse()).collect::<Result<Vec<_>, _>>().map_err(kubus::Error::from)?;
    Ok(Query {
        cube,
        measures: args.measures.clone(),
        drilldowns: args.drilldowns.clone(),
        cuts,
        totals: args.totals,
        order,
        limit: args.limit,
    })
}

async fn query(project: &Project, args: QueryArgs, role: Option<String>, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let query = build_query(&args)?;
    let answer = project.query(&query, &args.options(role)).await?;
    let mut table = project.result_table(&query.cube, &answer.result)?;
    table.notes = answer.notes;
    emit(project, &args.output, &table, &|name| name == TOTAL_COLUMN, stdout)
}

/// `kubus rollups`: one row per declared rollup.
fn rollup_table(
    project: &Project,
    status: &[kubus::RollupStatus],
    output: &OutputArgs,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    use kubus::arrow::array::{ArrayRef, StringArray, UInt64Array};
    let text = |f: &dyn Fn(&kubus::RollupStatus) -> String| -> ArrayRef {
        std::sync::Arc::new(StringArray::from_iter_values(status.iter().map(f)))
    };
    let number = |f: &dyn Fn(&kubus::StoredRollup) -> u64| -> ArrayRef {
        std::sync::Arc::new(status.iter().map(|s| s.stored.as_ref().map(f)).collect::<UInt64Array>())
    };
    let batch = kubus::arrow::record_batch::RecordBatch::try_from_iter([
        ("cube", text(&|s| s.cube.clone())),
        ("rollup", text(&|s| s.name.clone())),
        ("levels", text(&|s| s.levels.join(", "))),
        ("measures", text(&|s| s.measures.join(", "))),
        ("version", text(&|s| s.version.to_string())),
        ("built", text(&|s| if s.stored.is_some() { "yes".into() } else { "no: kubus rollups --build".into() })),
        ("rows", number(&|r| r.rows)),
        ("bytes", number(&|r| r.bytes)),
        ("build_ms", number(&|r| r.build_ms)),
        (
            "built_from",
            text(&|s| match s.stored.as_ref().map(|r| r.merged_from) {
                Some(Some(v)) => format!("version {v}'s rollup and the facts changed since"),
                Some(None) => "all the facts".into(),
                None => String::new(),
            }),
        ),
        (
            "built_with",
            text(&|s| {
                s.stored
                    .as_ref()
                    .map(|r| r.scan.iter().filter(|n| **n != s.name).cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            }),
        ),
    ])?;
    emit(project, output, &Table::plain("rollups", batch.schema(), vec![batch]), &|_| false, stdout)
}

fn emit(
    project: &Project,
    output: &OutputArgs,
    table: &Table,
    hide: &dyn Fn(&str) -> bool,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    match &output.out {
        Some(path) => {
            project.check_output(path)?;
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
            );
            render::write(output.format, table, hide, &mut file)?;
            file.flush()?;
            Ok(())
        }
        None if output.format.is_binary() => {
            let name = output.format.name();
            Err(Usage(format!("{name} is a binary format; write it to a file with --out FILE")).into())
        }
        None => render::write(output.format, table, hide, stdout),
    }
}

fn print_runs(runs: &[kubus::ScheduledRun], stdout: &mut dyn Write) -> anyhow::Result<()> {
    if runs.is_empty() {
        writeln!(stdout, "nothing due")?;
    }
    for r in runs {
        writeln!(stdout, "{} for {} (due {}): {}", r.due.report, r.due.period, r.due.at.to_rfc3339(), r.outcome)?;
    }
    Ok(())
}

/// The scheduler's loop: a pass, then sleep until the next run is due; SIGTERM or Ctrl-C end the sleep (never a run).
async fn schedule(
    project: &Project,
    options: &kubus::ScheduleOptions,
    once: bool,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> anyhow::Result<()> {
    let jobs = project.scheduled_jobs()?;
    writeln!(
        stderr,
        "kubus schedule: {} report(s) scheduled; run log {}",
        jobs.len(),
        options.out.join("schedule.jsonl").display()
    )?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        print_runs(&project.schedule_tick(chrono::Utc::now(), options).await?, stdout)?;
        if once {
            return Ok(());
        }
        let Some(next) = kubus_next_wake(&jobs) else { return Ok(()) };
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = term.recv() => { writeln!(stderr, "kubus schedule: stopped (SIGTERM)")?; return Ok(()); }
            _ = tokio::signal::ctrl_c() => { writeln!(stderr, "kubus schedule: stopped")?; return Ok(()); }
        }
    }
}

fn kubus_next_wake(jobs: &[kubus::ScheduleJob]) -> Option<chrono::DateTime<chrono::Utc>> {
    kubus::next_wake(jobs, chrono::Utc::now())
}

fn report_key(key: &[String]) -> String {
    key.join(" and ")
}

fn parse_as_of(text: &str) -> Result<(String, u64), String> {
    let (cube, version) =
        text.split_once('=').ok_or_else(|| format!("'{text}': write CUBE=VERSION, e.g. newcomers=3"))?;
    let version = version.trim().parse().map_err(|_| format!("'{version}' is not a version number"))?;
    Ok((cube.trim().to_owned(), version))
}

/// `FIELD=VALUE` of `--set`.
fn given(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((field, value)) if !field.trim().is_empty() => Ok((field.trim().to_owned(), value.to_owned())),
        _ => Err(format!("'{text}': write FIELD=VALUE, e.g. --set year=2023")),
    }
}

async fn dry_run_ingest(
    project: &Project,
    source: &str,
    files: &[PathBuf],
    options: kubus::IngestOptions,
    stdout: &mut dyn Write,
) -> anyhow::Result<()> {
    const PREVIEW: usize = 10;
    let options = kubus::IngestOptions { dry_run: true, preview: PREVIEW, ..options };
    let report = project.ingest_with(source, files, options, &mut |_| {}).await?;
    writeln!(
        stdout,
        "dry run: source {} → cube {} (nothing is committed, the quarantine is left as it is)",
        report.source, report.cube
    )?;
    print_files(&report.files, stdout)?;
    print_replaced(&report, stdout)?;
    if let Some(refusal) = &report.refusal {
        writeln!(stdout, "an ingest would be refused at its commit: {refusal}")?;
    }
    if let Some(preview) = &report.preview {
        writeln!(stdout, "\nfirst {} facts:", preview.num_rows())?;
        render::table(std::slice::from_ref(preview), &|c| c.starts_with('_') && c != kubus::STATUS_COLUMN, stdout)?;
    }
    writeln!(stdout, "\n{} rejected line(s)", report.rejected.len())?;
    if !report.rejected.is_empty() {
        let rows: Vec<(String, kubus::QuarantineRow)> =
            report.rejected.iter().map(|r| (report.source.clone(), r.clone())).collect();
        render::table(&[kubus::quarantine_batch(&rows)?], &|_| false, stdout)?;
    }
    match report.refusal {
        // A script that checks a delivery before ingesting it learns from the exit code too.
        Some(_) => {
            Err(Usage("an ingest of these files would be refused (see above); nothing was committed".into()).into())
        }
        None => Ok(()),
    }
}

/// The earlier files whose facts an ingest replaced (a dry run: would replace).
fn print_replaced(report: &kubus::IngestReport, stdout: &mut dyn Write) -> anyhow::Result<()> {
    let (did, brings) = if report.dry_run { ("would replace", "would bring") } else { ("replaced", "brings") };
    for r in &report.replaced {
        let whole = match (r.whole_file, report.dry_run) {
            (false, _) => "",
            (true, false) => " (all of them; its quarantine lines are gone)",
            (true, true) => " (all of them; its quarantine lines would go)",
        };
        writeln!(
            stdout,
            "{did} {} facts of {}{whole}: this ingest {brings} their {} again",
            r.facts,
            r.file,
            report_key(report.replace_key())
        )?;
    }
    Ok(())
}

/// One line per input file: its accounting, or that it was already ingested.
fn print_files(files: &[kubus::FileReport], stdout: &mut dyn Write) -> anyhow::Result<()> {
    for f in files {
        let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match &f.outcome {
            FileOutcome::Ingested(counts) => {
                let held = if counts.already_ingested {
                    "\n    the warehouse already holds this file (same SHA-256): an ingest would skip it"
                } else {
                    ""
                };
                writeln!(stdout, "  {name} ({}): {}{held}", counts.encoding, accounting(counts))?
            }
            FileOutcome::AlreadyIngested => {
                writeln!(stdout, "  {name}: already ingested (same SHA-256), nothing changed")?
            }
        }
    }
    Ok(())
}

/// One line that accounts for every line of the input: `lines = accepted + rejected + skipped`.
fn accounting(c: &FileCounts) -> String {
    let reasons: Vec<String> = c.skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let reasons = if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
    format!(
        "lines {} = accepted {} + rejected {} + skipped {}{reasons} → {} facts",
        c.lines,
        c.accepted,
        c.rejected,
        c.skipped_lines(),
        c.facts
    )
}

async fn demo(dir: &Path, stdout: &mut dyn Write, stderr: &mut dyn Write) -> anyhow::Result<()> {
    let project = Project::rebuild(dir)?;
    writeln!(
        stdout,
        "kubus demo: rebuilt the warehouse at {}; ingesting the sample exports",
        project.warehouse_location()
    )?;
    for step in project.config().demo_ingest.clone() {
        let inputs: Vec<PathBuf> = step.files.iter().map(PathBuf::from).collect();
        let files = project.expand_inputs(&inputs)?;
        writeln!(stdout)?;
        let report = ingest(
            &project,
            &step.source,
            &files,
            kubus::IngestOptions { demo_key: true, ..Default::default() },
            &mut std::io::sink(),
            stderr,
        )
        .await?;
        let totals = report.totals();
        writeln!(
            stdout,
            "ingested {} file(s) through {} into {}: {}",
            report.files.len(),
            report.source,
            report.cube,
            accounting(&totals)
        )?;
        if let Some(q) = report.quarantine.as_ref().filter(|_| totals.rejected > 0) {
            writeln!(stdout, "  rejected lines with reasons: {}", q.display())?;
        }
    }
    for q in project.config().demo_queries.clone() {
        let args = QueryArgs {
            cube: Some(q.cube.clone()),
            measures: q.measures.clone(),
            drilldowns: q.drilldowns.clone(),
            cuts: q.cuts.clone(),
            totals: q.totals,
            order: Vec::new(),
            limit: None,
            json: None,
            as_of: None,
            no_rollups: false,
            rollups_only: false,
            output: OutputArgs { format: OutputFormat::Table, out: None },
        };
        writeln!(stdout, "\n== {} ==", q.title)?;
        writeln!(stdout, "$ kubus query {}", shell_words(&args))?;
        query(&project, args, None, stdout).await?;
    }
    writeln!(
        stdout,
        "\nThe warehouse stays in place: try `kubus query newcomers -m persons -d district.area -c year=2024`."
    )?;
    Ok(())
}

fn shell_words(args: &QueryArgs) -> String {
    let quote = |s: &str| if s.contains([' ', ',', '*']) { format!("\"{s}\"") } else { s.to_owned() };
    let mut words = vec![args.cube.clone().unwrap_or_default()];
    words.extend(args.measures.iter().map(|m| format!("-m {}", quote(m))));
    words.extend(args.drilldowns.iter().map(|d| format!("-d {}", quote(d))));
    words.extend(args.cuts.iter().map(|c| format!("-c {}", quote(c))));
    if args.totals {
        words.push("--totals".into());
    }
    words.join(" ")
}
