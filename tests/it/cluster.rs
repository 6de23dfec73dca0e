//! Cube queries on a Ballista cluster on this machine: `kubus scheduler` and two `kubus executor`s, each a process
//! of its own (this test binary, re-run as the CLI), over warehouses in the tests' S3 server. The cluster's answers
//! equal this process's: the reference queries of `benches/queries` on the sample project (counts, distinct
//! persons, shares, time comparisons, totals, drill-across; as the statistics office and with the cell key
//! method's noise), and random queries of the rollup property test's generator on a scratch cube with every kind
//! of measure. An executor killed while `kubus serve` has queries on the cluster: each then either fails over to
//! the other executor or fails with an error that says the cluster failed (502), and the service lives on; with no
//! executor left, a question fails after `[engine] timeout_s` (504).

use crate::rollups::{cells, facts_csv, random_query, scratch_project};
use crate::storage::S3;
use crate::support::{Rng, cli, repo};
use kubus::{Project, Query, QueryOptions, RollupUse};
use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

/// Set in a child process: the CLI's arguments (separated by U+001F) it runs instead of the test.
const CHILD_ARGS: &str = "KUBUS_CLUSTER_TEST_CLI_ARGS";

/// Acts as the `kubus` binary when this process is a cluster process started by [`Cluster::start`].
fn child_mode() {
    if let Ok(args) = std::env::var(CHILD_ARGS) {
        let args = args.split('\u{1f}').map(str::to_owned);
        let code = kubus_cli::run(args, &mut std::io::stdout(), &mut std::io::stderr());
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
}

/// A scheduler and executors, ended (killed) with the test.
struct Cluster {
    scheduler: Child,
    executors: Vec<Child>,
    address: String,
    url: String,
    work: tempfile::TempDir,
    /// The test that started it (its processes re-run it as the CLI), and the project's folder.
    test: &'static str,
    dir: std::path::PathBuf,
}

impl Cluster {
    /// A scheduler and `executors` executors (one task at once each) for the project at `dir`, started by
    /// re-running the test `test` as the CLI.
    fn start(test: &'static str, dir: &Path, executors: usize) -> Cluster {
        let mut scheduler = spawn(test, dir, &["scheduler", "--listen", "127.0.0.1:0"]);
        let line = said(&mut scheduler, "kubus scheduler: ");
        let address = line.split_whitespace().find_map(|w| w.strip_prefix("ballista://")).unwrap().to_owned();
        let url = format!("ballista://{address}");
        let work = tempfile::tempdir().unwrap();
        let mut cluster = Cluster { scheduler, executors: Vec::new(), address, url, work, test, dir: dir.to_owned() };
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster
    }

    /// Starts one more executor.
    fn add_executor(&mut self) {
        let started = std::fs::read_dir(self.work.path()).unwrap().count();
        let folder = self.work.path().join(format!("executor-{started}"));
        std::fs::create_dir(&folder).unwrap();
        let folder = folder.display().to_string();
        let args = ["executor", "--scheduler", self.address.as_str(), "--cores", "1", "--work", folder.as_str()];
        let mut child = spawn(self.test, &self.dir, &args);
        said(&mut child, "kubus executor: 1 task(s) at once");
        self.executors.push(child);
    }

    /// Kills the executor started first of those still running.
    fn kill_executor(&mut self) {
        let mut lost = self.executors.remove(0);
        lost.kill().unwrap();
        lost.wait().unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain([&mut self.scheduler]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a cluster process said from `start` on, in the first line that holds it (the test harness writes before it,
/// on the same line); the rest is read on until the process ends, so that its writes never meet a closed pipe.
fn said(child: &mut Child, start: &str) -> String {
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    let found = lines.find_map(|l| l.find(start).map(|at| l[at..].to_owned()));
    std::thread::spawn(move || lines.for_each(drop));
    found.unwrap_or_else(|| panic!("the process ended without saying {start:?}: {:?}", child.wait()))
}

fn spawn(test: &str, dir: &Path, args: &[&str]) -> Child {
    let dir = dir.display().to_string();
    let args: Vec<&str> = ["kubus", "-C", dir.as_str()].into_iter().chain(args.iter().copied()).collect();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ARGS, args.join("\u{1f}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The reference queries of `benches/queries` in the sample project's terms (its measures and members), and a few
/// more: a distinct count at coarser levels with totals, a year-on-year change, a stock.
const REFERENCE: &[&[&str]] = &[
    &["newcomers", "-m", "records", "-d", "district"],
    &["newcomers", "-m", "records", "-d", "district", "-d", "language_level", "-c", "month.year=2024"],
    &["newcomers", "-m", "persons", "-d", "district", "-d", "age.age_band"],
    &["newcomers", "-m", "records", "-m", "course_hours", "-d", "month", "-c", "district=04"],
    &["newcomers", "-m", "share_below_b1", "-d", "district"],
    &[
        "newcomers",
        "-m",
        "records",
        "-d",
        "nationality",
        "-c",
        "district=01,07,04",
        "--order",
        "-records",
        "--limit",
        "10",
    ],
    &["newcomers", "-m", "persons", "-m", "persons_change", "-d", "district", "-d", "month.year"],
    &["newcomers", "-m", "records", "-d", "district", "-d", "language_level", "--totals"],
    &["language_demand", "-m", "need", "-m", "seats", "-d", "district", "-d", "language_level", "-c", "month=2024-06"],
    &[
        "newcomers",
        "-m",
        "records",
        "-m",
        "avg_course_hours",
        "-d",
        "district",
        "-d",
        "residence_status",
        "-d",
        "sex",
        "-d",
        "language_level",
        "-c",
        "in_course=ja",
    ],
    &["newcomers", "-m", "persons", "-d", "district.area", "-d", "year", "--totals"],
    &["newcomers", "-m", "stock", "-m", "persons_change_yoy_pct", "-d", "month", "-c", "year=2024"],
];

/// A query's CSV through the CLI in `dir` as `role`, from the facts, on `engine`.
fn answer(dir: &Path, role: &str, engine: &str, question: &[&str]) -> String {
    let mut args = vec!["--engine", engine, "--role", role, "query"];
    args.extend_from_slice(question);
    args.extend_from_slice(&["--no-rollups", "-f", "csv"]);
    let out = cli(dir, &args);
    assert_eq!(out.code, ExitCode::SUCCESS, "{question:?} on {engine}: {}", out.stderr);
    out.stdout
}

/// Points the project at `dir` to `s3://kubus/{prefix}` on `s3`, reading all facts on a cluster (none are small).
fn in_bucket(dir: &Path, s3: &S3, prefix: &str) {
    let path = dir.join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("warehouse = \"s3://kubus/{prefix}\"\n{text}{}", s3.storage())).unwrap();
}

/// The sample project with the demo's warehouse in `s3`, every facts query sent to a cluster (none is small) and
/// given `timeout_s` seconds there.
fn demo_in_bucket(s3: &S3, timeout_s: u64) -> tempfile::TempDir {
    let city = s3.project("city", crate::storage::SECRET_KEY);
    let out = cli(city.path(), &["demo"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let path = city.path().join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n[engine]\nlocal_below_mb = 0\ntimeout_s = {timeout_s}\n")).unwrap();
    city
}

#[test]
fn a_cluster_answers_as_this_process_does() {
    child_mode();
    const TEST: &str = "cluster::a_cluster_answers_as_this_process_does";
    let s3 = S3::start(&["kubus"]);
    let city = demo_in_bucket(&s3, 60);
    let cluster = Cluster::start(TEST, city.path(), 2);

    // The reference queries, unperturbed and with the cell key method's noise (which the executors add).
    for role in ["statistik", "analyst"] {
        for question in REFERENCE {
            let here = answer(city.path(), role, "local", question);
            assert_eq!(answer(city.path(), role, &cluster.url, question), here, "{question:?} as {role}");
        }
    }
    let explain = cli(
        city.path(),
        &["--engine", &cluster.url, "--role", "statistik", "explain", "newcomers", "-m", "persons", "--no-rollups"],
    );
    assert_eq!(explain.code, ExitCode::SUCCESS, "{}", explain.stderr);
    assert!(
        explain.stdout.contains(&format!("read on the Ballista cluster at {}", cluster.address)),
        "{}",
        explain.stdout
    );
    assert!(explain.stdout.contains("DistributedQueryExec"), "{}", explain.stdout);

    // Random queries on a scratch cube whose warehouse is in the same bucket.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let model = Project::open(repo()).unwrap().model().clone();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let scratch = tempfile::tempdir().unwrap();
    scratch_project(scratch.path(), &mut rng, &model);
    in_bucket(scratch.path(), &s3, "scratch");
    let facts = scratch.path().join("facts.csv");
    facts_csv(&facts, &mut rng, &model, 400, 0..60, 0..24);
    let local = Project::open(scratch.path()).unwrap();
    runtime.block_on(local.ingest("s", &[facts], &mut |_| {})).unwrap();
    let remote = local.clone().with_engine(&cluster.url).unwrap().with_local_below(0);
    let options = |per_grain| QueryOptions {
        role: Some("statistik".into()),
        rollups: RollupUse::Never,
        per_grain,
        ..Default::default()
    };
    let mut on_cluster = 0;
    for i in 0..30 {
        let query: Query = random_query(&mut rng, &model, None);
        let json = serde_json::to_string(&query).unwrap();
        let (here, there) = runtime.block_on(async {
            (local.query(&query, &options(i % 3 == 0)).await, remote.query(&query, &options(i % 3 == 0)).await)
        });
        match (here, there) {
            (Ok(here), Ok(there)) => {
                assert_eq!(cells(&there), cells(&here), "{json}");
                assert!(there.routes.iter().all(|r| r.engine.as_ref().is_some_and(|e| e.remote)), "{json}");
                on_cluster += 1;
            }
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{json}"),
            (a, b) => panic!("{json}: here {:?}, on the cluster {:?}", a.map(|x| x.routes), b.map(|x| x.routes)),
        }
    }
    assert!(on_cluster >= 20, "only {on_cluster} of 30 random queries were answered");
}

/// Questions read from the facts that differ from each other (the server keeps answers: a question asked again
/// would not reach the cluster).
const ASKED_IN_TURN: &[&[&str]] = &[
    &["newcomers", "-m", "persons", "-d", "district", "-d", "age.age_band"],
    &["newcomers", "-m", "persons", "-d", "district.area", "-d", "age.age_band"],
    &["newcomers", "-m", "records", "-d", "district", "-d", "language_level"],
    &["newcomers", "-m", "persons", "-d", "nationality"],
    &["newcomers", "-m", "records", "-m", "course_hours", "-d", "month"],
    &["newcomers", "-m", "persons", "-d", "age.age_band", "-d", "sex"],
];

/// The `/api/v1/query` path of a question in the CLI's words, read from the facts, as CSV.
fn query_path(question: &[&str]) -> String {
    let mut path = format!("/api/v1/query?cube={}", question[0]);
    for pair in question[1..].chunks(2) {
        path += &format!("&{}={}", pair[0].trim_start_matches('-'), pair[1]);
    }
    path + "&rollups=never&format=csv"
}

/// The `/api/v1/explain` path of a question in the CLI's words, read from the facts.
fn explain_path(question: &[&str]) -> String {
    query_path(question).replace("/api/v1/query?", "/api/v1/explain?").replace("&format=csv", "")
}

/// What the scheduler at `address` says of the job `job`: `queued`, `running`, `successful` or `failed: WHY`.
fn job_state(address: &str, job: &str) -> String {
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use ballista_core::serde::protobuf::{GetJobStatusParams, job_status::Status};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = runtime.block_on(async {
        let mut scheduler = SchedulerGrpcClient::connect(format!("http://{address}")).await.unwrap();
        let params = GetJobStatusParams { job_id: job.to_owned() };
        scheduler.get_job_status(params).await.unwrap().into_inner().status.and_then(|s| s.status)
    });
    match status {
        Some(Status::Queued(_)) => "queued".into(),
        Some(Status::Running(_)) => "running".into(),
        Some(Status::Successful(_)) => "successful".into(),
        Some(Status::Failed(failed)) => format!("failed: {}", failed.error),
        None => "unknown".into(),
    }
}

#[test]
fn an_executor_lost_during_queries_fails_over_or_fails_clearly() {
    child_mode();
    const TEST: &str = "cluster::an_executor_lost_during_queries_fails_over_or_fails_clearly";
    let s3 = S3::start(&["kubus"]);
    let city = demo_in_bucket(&s3, 30);
    let mut cluster = Cluster::start(TEST, city.path(), 2);
    let here: Vec<String> = ASKED_IN_TURN.iter().map(|q| answer(city.path(), "statistik", "local", q)).collect();
    // `kubus serve` with the cluster in its kubus.toml, asked over HTTP as the statistics office.
    let toml = city.path().join("kubus.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{text}cluster = \"{}\"\n", cluster.url)).unwrap();
    let token = crate::server::user(city.path(), "sabine", "statistikstelle");
    let server = crate::server::start(city.path());
    let ask = |question: &[&str]| crate::server::get(&server, &query_path(question), &token);
    let explained = crate::server::get(&server, &explain_path(ASKED_IN_TURN[0]), &token).text().unwrap();
    assert!(explained.contains(&format!("read on the Ballista cluster at {}", cluster.address)), "{explained}");

    // The questions in turn; after the first is answered, one executor is killed: the others run with the
    // scheduler still counting on it.
    let (answered, first_answered) = std::sync::mpsc::channel();
    let answers = std::thread::scope(|scope| {
        let asked = scope.spawn(|| {
            let first = ask(ASKED_IN_TURN[0]);
            answered.send(()).unwrap();
            [first].into_iter().chain(ASKED_IN_TURN[1..].iter().map(|q| ask(q))).collect::<Vec<_>>()
        });
        first_answered.recv().unwrap();
        cluster.kill_executor();
        asked.join().unwrap()
    });
    assert_eq!((answers[0].status().as_u16(), answers[0].text().unwrap()), (200, here[0].clone()));
    let cluster_failed = format!("cannot answer on the Ballista cluster at {}", cluster.address);
    let failed_clearly = |response: crate::server::Response| {
        let status = response.status().as_u16();
        let error = crate::server::json(response)["error"].as_str().unwrap().to_owned();
        assert!(
            matches!(status, 502 | 504) && error.starts_with(&cluster_failed),
            "a failed query must say that the cluster failed: {status} {error}"
        );
        error
    };
    for (response, here) in answers.into_iter().zip(&here).skip(1) {
        match response.status().as_u16() {
            200 => assert_eq!(&response.text().unwrap(), here, "an answer that failed over must be the same answer"),
            _ => drop(failed_clearly(response)),
        }
    }
    // The service lives on: it is ready, and what it reads itself is answered at once.
    let ready = crate::server::get(&server, "/readyz", &token);
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().unwrap());
    let rollup =
        crate::server::get(&server, "/api/v1/query?cube=newcomers&m=persons&d=district.area&c=year=2024", &token);
    assert_eq!(rollup.status().as_u16(), 200, "{}", rollup.text().unwrap());
    // Without any executor, a question fails once `[engine] timeout_s` has passed (here a server whose limit is 3 s),
    // and the service still lives.
    cluster.kill_executor();
    std::fs::write(&toml, std::fs::read_to_string(&toml).unwrap().replace("timeout_s = 30", "timeout_s = 3")).unwrap();
    let impatient = crate::server::start(city.path());
    let question = ["newcomers", "-m", "records", "-d", "sex"];
    let response = crate::server::get(&impatient, &query_path(&question), &token);
    assert_eq!(response.status().as_u16(), 504);
    let error = failed_clearly(response);
    let (_, job) = error
        .strip_suffix(")")
        .and_then(|e| e.split_once("no answer within 3 s ([engine] timeout_s); its job on the cluster was cancelled ("))
        .unwrap_or_else(|| panic!("{error}"));
    assert_eq!(job_state(&cluster.address, job), "failed: Cancelled", "the scheduler's record of the job");
    let ready = crate::server::get(&impatient, "/readyz", &token);
    assert_eq!(ready.status().as_u16(), 200, "{}", ready.text().unwrap());
    // A new executor takes the lost ones' place, and the cluster answers again.
    cluster.add_executor();
    let question = ["newcomers", "-m", "persons", "-d", "district", "-d", "sex"];
    let again = ask(&question);
    assert_eq!(
        (again.status().as_u16(), again.text().unwrap()),
        (200, answer(city.path(), "statistik", "local", &question))
    );
}
