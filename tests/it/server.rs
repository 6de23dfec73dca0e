//! `kubus serve` over real HTTP: the server runs on a free loopback port (in this process, or in a process of its own
//! where it must be killed) and is asked with reqwest as each office would ask it. Expected answers come from the
//! CLI on the same warehouse (another surface of the library) and from the uploaded files themselves.

use crate::support::{cli, csv_rows, project_copy};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

/// A server running on a thread of its own, stopped (as by SIGTERM) when dropped.
pub(crate) struct Running {
    address: SocketAddr,
    /// Where it speaks the PostgreSQL wire protocol.
    sql: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts `kubus serve` for the project in `dir` on a free port of 127.0.0.1.
pub(crate) fn start(dir: &Path) -> Running {
    let project = kubus::Project::open(dir).unwrap();
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let any = Some("127.0.0.1:0".parse().unwrap());
            let options = kubus_server::Options { listen: any, sql_listen: any, demo_key: true };
            let server = kubus_server::Server::bind(project, options).await.unwrap();
            address_tx.send((server.local_addr(), server.sql_addr().unwrap())).unwrap();
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    let (address, sql) = address_rx.recv().unwrap();
    Running { address, sql, stop: Some(stop), thread: Some(thread) }
}

/// Adds a user in `group` through the CLI and returns its new token.
pub(crate) fn user(dir: &Path, name: &str, group: &str) -> String {
    let added = cli(dir, &["user", "add", name, "--group", group]);
    assert_eq!(added.code, ExitCode::SUCCESS, "{}", added.stderr);
    let token = cli(dir, &["token", "create", name]);
    assert_eq!(token.code, ExitCode::SUCCESS, "{}", token.stderr);
    token.stdout.trim().to_owned()
}

/// The tokens of the shared server's users, by group.
struct Tokens {
    statistik: String,
    jugendamt: String,
    ortsbezirke: String,
    kurstraeger: String,
    datenpflege: String,
}

/// One shared copy of the sample project with the demo's warehouse, its users, and a server over it (read only).
fn shared() -> &'static (tempfile::TempDir, Tokens, Running) {
    static SHARED: OnceLock<(tempfile::TempDir, Tokens, Running)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = project_copy();
        let demo = cli(dir.path(), &["demo"]);
        assert_eq!(demo.code, ExitCode::SUCCESS, "{}", demo.stderr);
        let tokens = Tokens {
            statistik: user(dir.path(), "sabine", "statistikstelle"),
            jugendamt: user(dir.path(), "jonas", "jugendamt"),
            ortsbezirke: user(dir.path(), "olga", "ortsbezirke"),
            kurstraeger: user(dir.path(), "kai", "kurstraeger"),
            datenpflege: user(dir.path(), "dana", "datenpflege"),
        };
        let running = start(dir.path());
        (dir, tokens, running)
    })
}

/// The runtime every request of these tests runs on (reqwest's client is asynchronous; the tests are not).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap())
}

/// A request being built: reqwest's, sent on [`runtime`] and read whole.
struct Request(reqwest::RequestBuilder);

/// An answer, read whole.
pub(crate) struct Response {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Request {
    fn bearer_auth(self, token: &str) -> Request {
        Request(self.0.bearer_auth(token))
    }
    fn basic_auth(self, user: &str, password: Option<&String>) -> Request {
        Request(self.0.basic_auth(user, password))
    }
    fn header(self, name: &str, value: &str) -> Request {
        Request(self.0.header(name, value))
    }
    fn body(self, body: impl Into<reqwest::Body>) -> Request {
        Request(self.0.body(body))
    }
    /// A multipart body with one part per file, each named `file` and carrying the file's name.
    fn files(self, files: &[(String, Vec<u8>)]) -> Request {
        self.delivery(files, &[])
    }
    /// A multipart body of files and of values the files lack, each a part `set` holding `FIELD=VALUE`.
    fn delivery(self, files: &[(String, Vec<u8>)], set: &[&str]) -> Request {
        let (content_type, body) = multipart(files, set);
        Request(self.0.header("Content-Type", content_type).body(body))
    }
    fn send(self) -> Result<Response, reqwest::Error> {
        runtime().block_on(async move {
            let response = self.0.send().await?;
            let (status, headers) = (response.status(), response.headers().clone());
            Ok(Response { status, headers, body: response.bytes().await?.to_vec() })
        })
    }
}

impl Response {
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
    fn headers(&self) -> &reqwest::header::HeaderMap {
        &self.headers
    }
    pub(crate) fn text(&self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.body.clone())
    }
    fn bytes(&self) -> Result<&[u8], std::convert::Infallible> {
        Ok(&self.body)
    }
}

/// The boundary of the multipart bodies these tests send.
const BOUNDARY: &str = "kubus-test-boundary-7f3a";

/// A multipart/form-data body of files and `set` values: its content type and bytes.
fn multipart(files: &[(String, Vec<u8>)], set: &[&str]) -> (String, Vec<u8>) {
    let mut body = Vec::new();
    for value in set {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"set\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

struct Client(reqwest::Client);

impl Client {
    fn get(&self, url: impl AsRef<str>) -> Request {
        Request(self.0.get(url.as_ref()))
    }
    fn post(&self, url: impl AsRef<str>) -> Request {
        Request(self.0.post(url.as_ref()))
    }
    fn delete(&self, url: impl AsRef<str>) -> Request {
        Request(self.0.delete(url.as_ref()))
    }
}

fn client() -> Client {
    Client(reqwest::Client::builder().timeout(std::time::Duration::from_secs(120)).build().unwrap())
}

pub(crate) fn get(server: &Running, path: &str, token: &str) -> Response {
    client().get(server.url(path)).bearer_auth(token).send().unwrap()
}

pub(crate) fn json(response: Response) -> serde_json::Value {
    let text = response.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {text}", response.status()))
}

#[test]
fn without_a_valid_identity_nothing_is_answered() {
    let (_, tokens, server) = shared();
    let health = client().get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK, "health needs no identity");
    let anonymous = client().get(server.url("/api/v1/cubes")).send().unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().contains("Basic"), "Excel asks for a password");
    let query = "/api/v1/query?cube=newcomers&m=persons&d=district&c=month=2024-06";
    for bad in ["kubus_00", "", "sabine", &tokens.statistik[..tokens.statistik.len() - 1]] {
        let response = get(server, query, bad);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "token {bad:?}");
    }
    // HTTP Basic with the token as password (what Excel's and Power BI's web connectors send), for its own user only.
    let basic = client().get(server.url(query)).basic_auth("sabine", Some(&tokens.statistik)).send().unwrap();
    assert_eq!(basic.status(), StatusCode::OK);
    let other = client().get(server.url(query)).basic_auth("jonas", Some(&tokens.statistik)).send().unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED, "a token names its own user");
    // The trusted header is not trusted unless proxies are configured (the sample configures none).
    let claimed = client().get(server.url(query)).header("X-Remote-User", "sabine").send().unwrap();
    assert_eq!(claimed.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_browser_tool_is_served_from_the_binary_under_its_content_security_policy() {
    let (_, _, server) = shared();
    let page = client().get(server.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the explorer's page needs no identity: it holds no data");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    let html = page.text().unwrap();
    // Everything the page loads is this server's own (no CDN, nothing leaves the intranet), and no script is inline.
    for reference in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(reference) {
            let target = &html[at + reference.len()..];
            assert!(
                target.starts_with('/') || target.starts_with('#') || target.starts_with("data:"),
                "{}",
                &target[..target.find('"').unwrap()]
            );
        }
    }
    assert!(!html.contains("<script>") && !html.contains("style=\""), "no inline script or style");
    for (asset, media) in [("explorer.js", "text/javascript"), ("explorer.css", "text/css")] {
        let file = client().get(server.url(&format!("/assets/{asset}"))).send().unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{asset}");
        assert!(file.headers()["content-type"].to_str().unwrap().starts_with(media), "{asset}");
        assert_eq!(file.headers()["x-content-type-options"], "nosniff");
        assert!(html.contains(&format!("/assets/{asset}")), "the page loads {asset}");
    }
    assert_eq!(client().get(server.url("/assets/other.js")).send().unwrap().status(), StatusCode::NOT_FOUND);
    // The page's script asks for its own login: its refusals carry no challenge, or the browser would pop up its
    // password dialog; other clients (Excel) still get the challenge.
    let scripted = client().get(server.url("/api/v1/me")).header("X-Requested-With", "kubus-explorer").send().unwrap();
    assert_eq!(scripted.status(), StatusCode::UNAUTHORIZED);
    assert!(!scripted.headers().contains_key("www-authenticate"));
    let plain = client().get(server.url("/api/v1/me")).send().unwrap();
    assert!(plain.headers().contains_key("www-authenticate"));
}

#[test]
fn a_level_with_boundaries_serves_its_map_to_whom_may_see_it() {
    let (_, tokens, server) = shared();
    let path = "/api/v1/cubes/koeln_population/dimensions/area/geometry";
    let boroughs = get(server, &format!("{path}?level=stadtbezirk"), &tokens.statistik);
    assert_eq!(boroughs.status(), StatusCode::OK);
    assert_eq!(boroughs.headers()["content-type"], "application/geo+json");
    let boroughs = json(boroughs);
    let features = boroughs["features"].as_array().unwrap();
    // The file numbers the Stadtbezirke 1…9; the members are 001…009, with the labels of the dimension.
    let keys: Vec<&str> = features.iter().map(|f| f["properties"]["key"].as_str().unwrap()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["001", "002", "003", "004", "005", "006", "007", "008", "009"]);
    let porz = features.iter().find(|f| f["properties"]["key"] == "007").unwrap();
    assert_eq!(porz["properties"]["label"], "Porz");
    assert_eq!(porz["properties"].as_object().unwrap().len(), 2, "only key and label: {}", porz["properties"]);
    assert!(boroughs["attribution"].as_str().unwrap().contains("Stadt Köln"));
    let quarters = json(get(server, &format!("{path}?level=stadtteil"), &tokens.statistik));
    assert_eq!(quarters["features"].as_array().unwrap().len(), 86);
    // A level without boundaries, and a role without the cube's topic.
    assert_eq!(get(server, &format!("{path}?level=city"), &tokens.statistik).status(), StatusCode::NOT_FOUND);
    assert_eq!(get(server, &format!("{path}?level=stadtteil"), &tokens.jugendamt).status(), StatusCode::FORBIDDEN);
    assert_eq!(get(server, path, &tokens.statistik).status(), StatusCode::BAD_REQUEST, "no level named");
    // The sample's schematic Kaiserslautern: every district for the statistics office; no district for the youth
    // welfare office, whose role stops at areas.
    let districts = "/api/v1/cubes/newcomers/dimensions/district/geometry?level=district";
    let schematic = json(get(server, districts, &tokens.statistik));
    assert_eq!(schematic["features"].as_array().unwrap().len(), 18);
    assert!(schematic["attribution"].as_str().unwrap().contains("schematisch"));
    let refused = get(server, districts, &tokens.jugendamt);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(!refused.text().unwrap().contains("coordinates"));
}

#[test]
fn a_map_whose_feature_names_no_member_is_refused_naming_it() {
    let dir = project_copy();
    let file = dir.path().join("geo/koeln_stadtbezirke.geojson");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"NUMMER\":\"7\""), "the file numbers Porz 7");
    std::fs::write(&file, text.replace("\"NUMMER\":\"7\"", "\"NUMMER\":\"70\"")).unwrap();
    let project = kubus::Project::open(dir.path()).unwrap();
    let error = project.geometry(Some("statistik"), "koeln_population", "area", "stadtbezirk").unwrap_err();
    let message = kubus::error_chain(&error);
    assert!(message.contains("NUMMER = \"70\" is no member"), "{message}");
    assert!(!error.is_user_error(), "a broken map is the project's problem, not the question's");
}

#[test]
fn a_live_report_holds_the_cells_of_the_report_files_for_the_role() {
    // A project of its own: the run below writes report files, which the shared server's report test lists.
    let dir = project_copy();
    assert_eq!(cli(dir.path(), &["demo"]).code, ExitCode::SUCCESS);
    let analyst = user(dir.path(), "kai", "kurstraeger");
    let running = start(dir.path());
    let server = &running;
    let live = json(get(server, "/api/v1/reports/newcomers_monthly/live?period=2024-06", &analyst));
    assert_eq!(live["period_label"], "Juni 2024");
    let parts = live["parts"].as_array().unwrap();
    let table = parts.iter().find(|p| p["title"] == "Personen nach Altersgruppe und Geschlecht").unwrap();
    assert_eq!(table["kind"], "table");
    // The same cells as the report's JSON-stat file of that table, written by a run as the same role.
    let run = client()
        .post(server.url("/api/v1/reports/newcomers_monthly/runs?period=2024-06"))
        .bearer_auth(&analyst)
        .send()
        .unwrap();
    let files =
        json(run)["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect::<Vec<_>>();
    let file = files.iter().find(|f| f.starts_with("tables/05_") && f.ends_with(".json")).unwrap();
    let written = json(get(server, &format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{file}"), &analyst));
    assert_eq!(table["dataset"]["value"], written["value"]);
    assert_eq!(table["dataset"]["status"], written["status"]);
    assert!(!written["status"].as_object().unwrap().is_empty(), "the table has suppressed cells");
    // The map: the report file's picture, one area per district the role sees, drawn by the same run.
    let map = parts.iter().find(|p| p["kind"] == "map").unwrap();
    let svg = map["svg"].as_str().unwrap();
    assert_eq!(svg.matches("<path class=\"area\"").count(), 18, "{svg}");
    let html = files.iter().find(|f| f.ends_with(".html")).unwrap();
    let page = get(server, &format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{html}"), &analyst).text().unwrap();
    assert!(page.contains(svg), "the dashboard's map is the report file's");
    // Without a month: the latest the report's cube answers.
    let latest = json(get(server, "/api/v1/reports/newcomers_monthly/live", &analyst));
    assert_eq!(latest["period"], "2024-12");
    // A report over a cube of two time roles opens at the latest month of the one its period cut names, and its
    // forecast chart's dataset marks the forecast months.
    let allocations = json(get(server, "/api/v1/reports/zuweisungen_monthly/live", &analyst));
    assert_eq!(allocations["period"], "2025-06");
    let chart = allocations["parts"].as_array().unwrap().iter().find(|p| p["kind"] == "line").unwrap();
    let statuses = chart["dataset"]["status"].as_object().unwrap();
    assert_eq!(statuses.values().filter(|s| *s == "P").count(), 6 * 3, "six months of forecast and its bounds");
    let unknown = get(server, "/api/v1/reports/nope/live", &analyst);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[test]
fn a_revoked_token_and_a_removed_user_are_refused_at_once() {
    let dir = project_copy();
    let first = user(dir.path(), "rita", "statistikstelle");
    let second = cli(dir.path(), &["token", "create", "rita"]).stdout.trim().to_owned();
    let server = start(dir.path());
    for token in [&first, &second] {
        assert_eq!(get(&server, "/api/v1/me", token).status(), StatusCode::OK);
    }
    let listed = cli(dir.path(), &["user", "list"]).stdout;
    let users: toml::Table = std::fs::read_to_string(dir.path().join("users.toml")).unwrap().parse().unwrap();
    let id = users["users"]["rita"]["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert!(listed.contains(&id), "{listed}");
    let revoked = cli(dir.path(), &["token", "revoke", "rita", &id]);
    assert_eq!(revoked.code, ExitCode::SUCCESS, "{}", revoked.stderr);
    assert_eq!(get(&server, "/api/v1/me", &first).status(), StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(get(&server, "/api/v1/me", &second).status(), StatusCode::OK, "the other token stays");
    assert_eq!(cli(dir.path(), &["token", "revoke", "rita", &id]).code, ExitCode::from(2), "gone already");
    assert_eq!(cli(dir.path(), &["user", "remove", "rita"]).code, ExitCode::SUCCESS);
    assert_eq!(get(&server, "/api/v1/me", &second).status(), StatusCode::UNAUTHORIZED, "removed");
}

#[test]
fn a_browser_session_serves_every_tab_until_logout_or_its_token_is_revoked() {
    let dir = project_copy();
    let token = user(dir.path(), "rita", "statistikstelle");
    let server = start(dir.path());
    let script = ("X-Requested-With", "kubus-explorer");
    let open = || {
        let opened = client().post(server.url("/api/v1/session")).basic_auth("rita", Some(&token)).send().unwrap();
        assert_eq!(opened.status(), StatusCode::NO_CONTENT);
        let cookie = opened.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        cookie.split(';').next().unwrap().to_owned()
    };
    let me = |cookie: &str| client().get(server.url("/api/v1/me")).header("Cookie", cookie).send().unwrap();
    let cookie = open();
    assert!(cookie.starts_with("kubus_session=") && cookie.len() > 64, "{cookie}");
    // Any request with the cookie (any tab of the browser) is rita's, and the token stays out of the cookie.
    let answered = me(&cookie);
    assert_eq!((answered.status(), json(answered)["user"].clone()), (StatusCode::OK, serde_json::json!("rita")));
    assert!(!cookie.contains(&token));
    // A request that changes something by the cookie alone must come from the browser tool's script: a form posted
    // from another site cannot send the header.
    let query = r#"{"cube":"newcomers","measures":["persons"]}"#;
    let post = || {
        client().post(server.url("/api/v1/query")).header("Cookie", &cookie).header("Content-Type", "application/json")
    };
    let refused = post().body(query).send().unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{:?}", refused.text());
    let sent = post().header(script.0, script.1).body(query).send().unwrap();
    assert_eq!(sent.status(), StatusCode::NOT_FOUND, "past the session's check: the copy has no facts yet");
    // A cookie the server did not give, and a session opened without a token, are refused.
    assert_eq!(me("kubus_session=00ff").status(), StatusCode::UNAUTHORIZED);
    let again = client().post(server.url("/api/v1/session")).header("Cookie", &cookie).header(script.0, script.1);
    assert_eq!(again.send().unwrap().status(), StatusCode::BAD_REQUEST);
    // Logging out ends it for every tab.
    let closed = client().delete(server.url("/api/v1/session")).header("Cookie", &cookie).header(script.0, script.1);
    assert_eq!(closed.send().unwrap().status(), StatusCode::NO_CONTENT);
    let ended = me(&cookie);
    assert_eq!(ended.status(), StatusCode::UNAUTHORIZED);
    assert!(ended.text().unwrap().contains("the session has ended"));
    // A revoked token ends the sessions it opened.
    let cookie = open();
    assert_eq!(me(&cookie).status(), StatusCode::OK);
    let users: toml::Table = std::fs::read_to_string(dir.path().join("users.toml")).unwrap().parse().unwrap();
    let id = users["users"]["rita"]["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(cli(dir.path(), &["token", "revoke", "rita", &id]).code, ExitCode::SUCCESS);
    assert_eq!(me(&cookie).status(), StatusCode::UNAUTHORIZED, "revoked");
    // A user holds at most 32 sessions: the 33rd login ends the oldest.
    let token = cli(dir.path(), &["token", "create", "rita"]).stdout.trim().to_owned();
    let login = || {
        let opened = client().post(server.url("/api/v1/session")).basic_auth("rita", Some(&token)).send().unwrap();
        opened.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    };
    let sessions: Vec<String> = (0..33).map(|_| login()).collect();
    assert_eq!(me(&sessions[0]).status(), StatusCode::UNAUTHORIZED, "the oldest of 33");
    assert!(sessions[1..].iter().all(|c| me(c).status() == StatusCode::OK));
}

#[test]
fn a_role_that_may_not_is_refused_with_the_rule() {
    let (_, tokens, server) = shared();
    let refused = get(server, "/api/v1/query?cube=newcomers&m=persons&d=district", &tokens.jugendamt);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body = json(refused);
    assert_eq!(body["role"], "jugendhilfe");
    assert_eq!(body["rule"], "it may see district down to level area, not district");
    // A topic outside the role's: the population cubes are not the youth welfare office's.
    let topic = get(server, "/api/v1/query?cube=population_by_land&m=inhabitants", &tokens.jugendamt);
    assert_eq!(topic.status(), StatusCode::FORBIDDEN);
    assert!(json(topic)["rule"].as_str().unwrap().contains("may read the cubes newcomers"));
    let quarantine = get(server, "/api/v1/quarantine", &tokens.kurstraeger);
    assert_eq!(quarantine.status(), StatusCode::FORBIDDEN, "raw values of persons are for the data stewards");
    let stewards = get(server, "/api/v1/quarantine?format=csv", &tokens.datenpflege);
    assert_eq!(stewards.status(), StatusCode::OK);
    assert!(!csv_rows(&stewards.text().unwrap()).is_empty(), "the sample exports have rejected lines");
    let upload = client()
        .post(server.url("/api/v1/sources/abh_newcomers/files"))
        .bearer_auth(&tokens.kurstraeger)
        .files(&[("neuzugewanderte_2024-07.csv".into(), b"Personennummer\n".to_vec())])
        .send()
        .unwrap();
    assert_eq!(upload.status(), StatusCode::FORBIDDEN, "a course provider delivers course offers, not newcomers");
}

#[test]
fn the_youth_welfare_office_cannot_reach_a_single_district_through_any_endpoint() {
    let (_, tokens, server) = shared();
    let token = &tokens.jugendamt;
    let forbidden = [
        "/api/v1/query?cube=newcomers&m=persons&d=district",
        "/api/v1/query?cube=newcomers&m=persons&d=district.district",
        "/api/v1/query?cube=newcomers&m=persons&c=district=11",
        "/api/v1/query?cube=newcomers&m=persons&c=district!=11&d=district.area",
        "/api/v1/query?cube=language_demand&m=need&d=district",
        "/api/v1/query?cube=newcomers&m=persons&d=age",
        "/api/v1/explain?cube=newcomers&m=persons&d=district",
        "/api/v1/cubes/newcomers/dimensions/district/members?level=district",
        "/api/v1/cubes/newcomers/dimensions/age/members?level=age_year",
    ];
    for path in forbidden {
        let response = get(server, path, token);
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}: {}", response.text().unwrap());
    }
    for (format, media) in [("csv", "text/csv"), ("json-stat", "json-stat"), ("xlsx", "spreadsheetml")] {
        let response =
            get(server, &format!("/api/v1/query?cube=newcomers&m=persons&d=district&format={format}"), token);
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{format}");
        let content = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content.starts_with("application/json") && !content.contains(media), "{format}: an error, no data");
        assert!(json(response)["error"].as_str().unwrap().contains("not district"));
    }
    let posted = client()
        .post(server.url("/api/v1/query"))
        .bearer_auth(token)
        .body(r#"{"cube": "newcomers", "measures": ["persons"], "drilldowns": ["district"]}"#)
        .send()
        .unwrap();
    assert_eq!(posted.status(), StatusCode::FORBIDDEN);
    // The catalogue offers areas, never districts; the areas themselves answer.
    let catalog = json(get(server, "/api/v1/cubes", token));
    let cubes: Vec<&str> = catalog.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(cubes, ["course_offers", "language_demand", "newcomers"], "the role's topic, nothing else");
    let newcomers = catalog.as_array().unwrap().iter().find(|c| c["name"] == "newcomers").unwrap();
    let district = newcomers["dimensions"].as_array().unwrap().iter().find(|d| d["name"] == "district").unwrap();
    let levels: Vec<&str> =
        district["levels"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(levels, ["city", "area"]);
    let areas = get(server, "/api/v1/query?cube=newcomers&m=persons&d=district.area&c=month=2024-06&format=csv", token);
    assert_eq!(areas.status(), StatusCode::OK);
    assert!(csv_rows(&areas.text().unwrap()).len() >= 2);
}

/// Persons by district in June 2024 through the CLI as the analysts, with more arguments: CSV rows.
fn analysts_persons_by_district(dir: &Path, more: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["--role", "analyst", "query", "newcomers", "-m", "persons", "-d", "district"];
    args.extend(["-c", "month=2024-06", "-f", "csv"]);
    args.extend(more);
    let out = cli(dir, &args);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    csv_rows(&out.stdout)
}

#[test]
fn the_ortsbezirke_see_only_their_rows_and_totals() {
    let (dir, tokens, server) = shared();
    let path = "/api/v1/query?cube=newcomers&m=persons&d=district&c=month=2024-06&totals=true&format=csv";
    let response = get(server, path, &tokens.ortsbezirke);
    assert_eq!(response.status(), StatusCode::OK);
    let rows = csv_rows(&response.text().unwrap());
    // The same question through the CLI as analysts, cut to the Ortsbezirke's area: the same cells, so (under the
    // cell key method) the same published values, total included.
    assert_eq!(rows, analysts_persons_by_district(dir.path(), &["-c", "district.area=O", "--totals"]));
    let all = analysts_persons_by_district(dir.path(), &[]);
    assert!(all.len() > rows.len(), "the city has more districts than the Ortsbezirke");
}

#[test]
fn every_format_carries_the_same_protected_numbers_as_the_cli() {
    let (dir, tokens, server) = shared();
    let args = ["newcomers", "-m", "persons", "-d", "district.area", "-d", "language_level", "-c", "month=2024-06"];
    let path = "/api/v1/query?cube=newcomers&m=persons&d=district.area&d=language_level&c=month=2024-06";
    for (format, media) in [
        ("csv", "text/csv"),
        ("csv-de", "text/csv"),
        ("json", "application/json"),
        ("json-stat", "application/json"),
        ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("parquet", "application/vnd.apache.parquet"),
    ] {
        let response = get(server, &format!("{path}&format={format}"), &tokens.kurstraeger);
        assert_eq!(response.status(), StatusCode::OK, "{format}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(media), "{format}");
        assert!(response.headers()["content-disposition"].to_str().unwrap().contains("filename=\"newcomers."));
        assert!(response.headers()["kubus-protection"].to_str().unwrap().contains("Cell-Key"), "{format}");
        let body = response.bytes().unwrap();
        let out = dir.path().join(format!("answer.{format}"));
        let mut cli_args = vec!["--role", "analyst", "query"];
        cli_args.extend(args);
        cli_args.extend(["-f", format, "-o", out.to_str().unwrap()]);
        let local = cli(dir.path(), &cli_args);
        assert_eq!(local.code, ExitCode::SUCCESS, "{}", local.stderr);
        if format == "xlsx" || format == "parquet" {
            // Binary files carry a time of writing: compare what a reader sees.
            let served = dir.path().join(format!("served.{format}"));
            std::fs::write(&served, body).unwrap();
            assert_eq!(read_binary(&served, format), read_binary(&out, format), "{format}");
        } else {
            assert_eq!(String::from_utf8_lossy(body), std::fs::read_to_string(&out).unwrap(), "{format}");
        }
    }
    // Without ?format=, the Accept header chooses; without either, JSON.
    let csv =
        client().get(server.url(path)).bearer_auth(&tokens.kurstraeger).header("Accept", "text/csv").send().unwrap();
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let plain = get(server, path, &tokens.kurstraeger);
    assert!(plain.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let misspelt = get(server, &format!("{path}&fromat=csv"), &tokens.kurstraeger);
    assert_eq!(misspelt.status(), StatusCode::BAD_REQUEST, "an unknown parameter is not ignored");
}

/// The cells of an XLSX workbook's first sheet, or a Parquet file's rows, as text.
fn read_binary(path: &Path, format: &str) -> Vec<Vec<String>> {
    use calamine::Reader as _;
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    if format == "xlsx" {
        let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).unwrap();
        let sheet = book.worksheet_range_at(0).unwrap().unwrap();
        let rows: Vec<Vec<String>> = sheet.rows().map(|r| r.iter().map(ToString::to_string).collect()).collect();
        assert!(rows.len() > 1, "a heading and rows: {}", path.display());
        return rows;
    }
    let file = std::fs::File::open(path).unwrap();
    let reader = datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let options = FormatOptions::default();
        let columns: Vec<_> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        rows.extend((0..batch.num_rows()).map(|r| columns.iter().map(|c| c.value(r).to_string()).collect()));
    }
    assert!(!rows.is_empty(), "{}", path.display());
    rows
}

#[test]
fn members_and_the_catalogue_answer_what_the_role_may_ask() {
    let (_, tokens, server) = shared();
    let me = json(get(server, "/api/v1/me", &tokens.statistik));
    assert_eq!(
        (me["user"].as_str(), me["role"].as_str(), me["sql"].as_bool()),
        (Some("sabine"), Some("statistik"), Some(true))
    );
    let found = json(get(
        server,
        "/api/v1/cubes/newcomers/dimensions/district/members?level=district&q=west",
        &tokens.statistik,
    ));
    let found = found.as_array().unwrap();
    assert!(!found.is_empty());
    for member in found {
        let texts = [&member["key"], &member["label"], &member["label_en"]]
            .into_iter()
            .chain(member["aliases"].as_array().unwrap())
            .map(|t| t.as_str().unwrap().to_lowercase())
            .collect::<Vec<_>>();
        assert!(texts.iter().any(|t| t.contains("west")), "{member}");
    }
    let all =
        json(get(server, "/api/v1/cubes/newcomers/dimensions/district/members?level=district", &tokens.statistik));
    assert!(all.as_array().unwrap().len() > found.len(), "the search narrows");
    let cube = json(get(server, "/api/v1/cubes/newcomers", &tokens.statistik));
    assert!(cube["measures"].as_array().unwrap().iter().any(|m| m["name"] == "persons"));
    assert_eq!(get(server, "/api/v1/cubes/nonesuch", &tokens.statistik).status(), StatusCode::NOT_FOUND);
    let explain = get(server, "/api/v1/explain?cube=newcomers&m=persons&d=district.area", &tokens.statistik);
    assert_eq!(explain.status(), StatusCode::OK);
    assert!(explain.text().unwrap().starts_with("reads "));
}

/// A fresh project with the newcomers of June 2024 ingested, its users, and a server over it.
fn upload_project() -> (tempfile::TempDir, String) {
    let dir = project_copy();
    let first = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"],
    );
    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    let token = user(dir.path(), "abh", "auslaenderbehoerde");
    (dir, token)
}

fn upload(server: &Running, token: &str, source: &str, files: &[PathBuf]) -> Response {
    let files: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(f).unwrap()))
        .collect();
    client()
        .post(server.url(&format!("/api/v1/sources/{source}/files")))
        .bearer_auth(token)
        .files(&files)
        .send()
        .unwrap()
}

fn version(dir: &Path) -> Option<u64> {
    let project = kubus::Project::open(dir).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(project.version("newcomers")).unwrap()
}

/// The months of the newcomers' facts, through the CLI as the statistics office.
fn months(dir: &Path) -> Vec<String> {
    let out = cli(dir, &["--role", "statistik", "query", "newcomers", "-m", "records", "-d", "month", "-f", "csv"]);
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    csv_rows(&out.stdout).into_iter().map(|r| r[0].clone()).collect()
}

/// A source whose files lack the year takes it from the upload (a part `set` holding `year=2023`) and lists it as
/// `given`; without the value, or with one for a field the files hold, the upload is refused and nothing stored.
#[test]
fn an_upload_gives_the_values_its_files_lack() {
    let dir = crate::silent::offences_project("", "");
    let source = dir.path().join("cube-schemas/sources/offences_en.toml");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, text.replace("member = \"Year\"", "member = \"@set\"")).unwrap();
    let config = dir.path().join("kubus.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[groups.polizei]\ndescription = \"Police\"\nrole = \"datenpflege\"\ningest = [\"offences_en\"]\n");
    std::fs::write(&config, toml).unwrap();
    let token = user(dir.path(), "paula", "polizei");
    let server = start(dir.path());
    let sources = json(get(&server, "/api/v1/sources", &token));
    assert_eq!(sources[0]["name"], "offences_en", "{sources}");
    assert_eq!(sources[0]["given"], serde_json::json!(["year"]));
    let file = [("offences.csv".to_owned(), b"Key,Cases\n110,4\n120,6\n".to_vec())];
    let send = |set: &[&str]| {
        client()
            .post(server.url("/api/v1/sources/offences_en/files"))
            .bearer_auth(&token)
            .delivery(&file, set)
            .send()
            .unwrap()
    };
    let without = send(&[]);
    assert_eq!(without.status(), StatusCode::BAD_REQUEST);
    assert!(without.text().unwrap().contains("a part `set` holding year=…"), "{}", without.text().unwrap());
    let wrong = send(&["year=2023", "cases=1"]);
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "{}", wrong.text().unwrap());
    assert_eq!(send(&["year=2023", "year=2024"]).status(), StatusCode::BAD_REQUEST);
    let project = kubus::Project::open(dir.path()).unwrap();
    let stored = tokio::runtime::Runtime::new().unwrap().block_on(project.version("offences")).unwrap();
    assert_eq!(stored, None, "nothing is committed before a good upload");
    let answer = json(send(&["year=2023"]));
    assert_eq!((answer["accepted"].as_u64(), answer["facts"].as_u64()), (Some(2), Some(2)), "{answer}");
    let landed = [crate::silent::row("110", "2023", "4"), crate::silent::row("120", "2023", "6")];
    assert_eq!(crate::silent::cases(dir.path()), landed);
    // Another file with a cell the table holds is refused at its commit, still with its line accounting.
    let again = [("again.csv".to_owned(), b"Key,Cases\n120,7\n".to_vec())];
    let refused = client()
        .post(server.url("/api/v1/sources/offences_en/files"))
        .bearer_auth(&token)
        .delivery(&again, &["year=2023"])
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT, "{}", refused.text().unwrap());
    let body = json(refused);
    assert!(body["error"].as_str().unwrap().contains("again.csv brings 1 cell that offences.csv"), "{body}");
    let file = &body["files"][0];
    assert_eq!(
        (file["outcome"].as_str(), file["file"].as_str(), file["lines"].as_u64(), file["accepted"].as_u64()),
        (Some("not_committed"), Some("again.csv"), Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(crate::silent::cases(dir.path()), landed, "nothing of the refused upload was committed");
}

#[test]
fn a_form_line_is_checked_field_by_field_and_ingested_like_an_upload() {
    let dir = project_copy();
    assert_eq!(cli(dir.path(), &["demo"]).code, ExitCode::SUCCESS);
    let token = user(dir.path(), "kai", "kurstraeger");
    let youth = user(dir.path(), "jonas", "jugendamt");
    // Seats of one provider fall under the dominance rule: the statistics office reads them exactly.
    let statistik = user(dir.path(), "sabine", "statistikstelle");
    let server = start(dir.path());
    let sources = json(get(&server, "/api/v1/sources", &token));
    let names: Vec<&str> = sources.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["provider_form", "provider_offers"], "the sources the providers' group lists under ingest");
    let form = &sources[0];
    assert_eq!(form["form"], true);
    let fields: Vec<(&str, &str)> = form["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["input"].as_str().unwrap(), f["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        [
            ("Träger", "member"),
            ("Stadtteil", "member"),
            ("Niveau", "member"),
            ("Kursart", "member"),
            ("Kursbeginn", "date"),
            ("Plätze", "number")
        ]
    );
    assert_eq!(form["fields"][1]["dimension"], "district");
    assert_eq!(json(get(&server, "/api/v1/sources", &youth)), serde_json::json!([]));

    let post = |source: &str, body: serde_json::Value| {
        client()
            .post(server.url(&format!("/api/v1/sources/{source}/form")))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let provider = json(get(&server, "/api/v1/cubes/course_offers/dimensions/provider/members", &token))[0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let offer = |district: &str| {
        serde_json::json!({"Träger": provider, "Stadtteil": district, "Niveau": "B1", "Kursart": "Integrationskurs",
                           "Kursbeginn": "2025-09-01", "Plätze": "17"})
    };
    let seats = || {
        let csv = get(
            &server,
            "/api/v1/query?cube=course_offers&m=seats&c=district.district=06&c=start_month.month=2025-09&format=csv",
            &statistik,
        );
        let text = csv.text().unwrap();
        assert_eq!(csv.status(), StatusCode::OK, "{text}");
        csv_rows(&text).first().and_then(|r| r[0].parse::<f64>().ok()).unwrap_or(0.0)
    };
    let before = seats();
    // A district that is no member is rejected with its field, and nothing is ingested.
    let rejected = json(post("provider_form", offer("Mars")));
    assert_eq!((rejected["accepted"].as_u64(), rejected["rejected_lines"].as_u64()), (Some(0), Some(1)), "{rejected}");
    assert_eq!(rejected["rejected"][0]["column"], "Stadtteil");
    assert_eq!(seats(), before);
    let accepted = json(post("provider_form", offer("06")));
    assert_eq!((accepted["accepted"].as_u64(), accepted["facts"].as_u64()), (Some(1), Some(1)), "{accepted}");
    assert_eq!(seats(), before + 17.0, "the offer is in the cube's answers: {accepted}");
    // A field the form does not have, a file source, and a group without the source are refused.
    let mut unknown = offer("06");
    unknown["Preis"] = "100".into();
    assert_eq!(post("provider_form", unknown).status(), StatusCode::BAD_REQUEST);
    assert_eq!(post("provider_offers", offer("06")).status(), StatusCode::BAD_REQUEST);
    let refused = client()
        .post(server.url("/api/v1/sources/provider_form/form"))
        .bearer_auth(&youth)
        .header("Content-Type", "application/json")
        .body(offer("06").to_string())
        .send()
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[test]
fn an_upload_lands_with_its_line_accounting() {
    let (dir, token) = upload_project();
    let server = start(dir.path());
    let file = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv");
    let before = version(dir.path());
    // A SQL session open before the upload sees its commit at the next query.
    let statistik = user(dir.path(), "sabine", "statistikstelle");
    let session = pg(&server, "sabine", &statistik).unwrap();
    let sql_months = || -> Vec<String> {
        let rows = runtime().block_on(session.query("SELECT DISTINCT month FROM newcomers ORDER BY 1", &[])).unwrap();
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    };
    assert_eq!(sql_months(), ["2024-06"]);
    let report = json(upload(&server, &token, "abh_newcomers", std::slice::from_ref(&file)));
    let bytes = std::fs::read(&file).unwrap();
    let physical = bytes.iter().filter(|&&b| b == b'\n').count() + usize::from(!bytes.ends_with(b"\n"));
    let f = &report["files"][0];
    assert_eq!(f["outcome"], "ingested", "{report}");
    assert_eq!(f["lines"].as_u64().unwrap() as usize, physical, "every line of the file is accounted for");
    let skipped: u64 = f["skipped"].as_array().unwrap().iter().map(|s| s["lines"].as_u64().unwrap()).sum();
    assert_eq!(f["accepted"].as_u64().unwrap() + f["rejected"].as_u64().unwrap() + skipped, physical as u64);
    let data_lines = bytes.split(|&b| b == b'\n').filter(|l| l.starts_with(b"ABH-")).count() as u64;
    assert_eq!(f["accepted"].as_u64().unwrap() + f["rejected"].as_u64().unwrap(), data_lines);
    assert_eq!(report["version"].as_u64(), before.map(|v| v + 1), "one upload is one commit");
    assert_eq!(version(dir.path()), before.map(|v| v + 1));
    assert_eq!(months(dir.path()), ["2024-06", "2024-07"]);
    assert_eq!(sql_months(), ["2024-06", "2024-07"]);
    // The uploader is no data steward: where and what kind, not the raw values.
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len() as u64, f["rejected"].as_u64().unwrap());
    assert!(rejected.iter().all(|r| r.get("value").is_none() && r["problem"].is_string()));
    // The same file again changes nothing.
    let again = json(upload(&server, &token, "abh_newcomers", &[file]));
    assert_eq!(again["files"][0]["outcome"], "already_ingested");
    assert_eq!(version(dir.path()), before.map(|v| v + 1));
    assert!(
        std::fs::read_dir(dir.path().join("warehouse/uploads")).unwrap().next().is_none(),
        "uploads are cleaned up"
    );
}

/// A server over a warehouse in a bucket: ready once the bucket answers, an upload lands in the bucket (staged in the
/// project's work folder, which is emptied), and the next question, by HTTP or SQL, sees it.
#[test]
fn a_server_over_a_bucket_takes_uploads_into_it() {
    let s3 = crate::storage::S3::start(&["kubus"]);
    let dir = s3.project("served", crate::storage::SECRET_KEY);
    let first = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"],
    );
    assert_eq!(first.code, ExitCode::SUCCESS, "{}", first.stderr);
    let token = user(dir.path(), "abh", "auslaenderbehoerde");
    let statistik = user(dir.path(), "sabine", "statistikstelle");
    let server = start(dir.path());
    let ready = client().get(server.url("/readyz")).send().unwrap();
    assert_eq!((ready.status(), ready.text().unwrap()), (StatusCode::OK, "ready\n".to_owned()));
    let file = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv");
    let report = json(upload(&server, &token, "abh_newcomers", std::slice::from_ref(&file)));
    assert_eq!(report["files"][0]["outcome"], "ingested", "{report}");
    assert_eq!(report["version"].as_u64(), Some(1), "{report}");
    assert_eq!(months(dir.path()), ["2024-06", "2024-07"]);
    let session = pg(&server, "sabine", &statistik).unwrap();
    let rows = runtime().block_on(session.query("SELECT DISTINCT month FROM newcomers ORDER BY 1", &[])).unwrap();
    assert_eq!(rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>(), ["2024-06", "2024-07"]);
    let log = s3.folder("served").join("facts/newcomers/_delta_log");
    assert!(log.join("00000000000000000001.json").is_file(), "the upload's commit is in the bucket");
    assert!(std::fs::read_dir(dir.path().join(".kubus/uploads")).unwrap().next().is_none(), "uploads are cleaned up");
    assert!(!dir.path().join("warehouse").exists());
    // Without its bucket the server is not ready, and says why.
    drop(s3);
    let ready = client().get(server.url("/readyz")).send().unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text().unwrap(), "the warehouse cannot be reached\n");
}

#[test]
fn an_upload_over_the_size_limit_changes_nothing() {
    use std::io::Write as _;
    let (dir, token) = upload_project();
    let path = dir.path().join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("max_upload_mb = 256", "max_upload_mb = 1");
    std::fs::write(&path, text).unwrap();
    let server = start(dir.path());
    let before = version(dir.path());
    // Two megabytes of a valid export: the sample month, repeated with fresh person numbers.
    let sample = std::fs::read(dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv")).unwrap();
    let mut big = sample.clone();
    let mut copy = 0;
    while big.len() < 2 << 20 {
        copy += 1;
        for line in sample.split(|&b| b == b'\n').filter(|l| l.starts_with(b"ABH-")) {
            big.extend_from_slice(format!("C{copy}-").as_bytes());
            big.extend_from_slice(line);
            big.push(b'\n');
        }
    }
    let file = dir.path().join("neuzugewanderte_gross.csv");
    std::fs::write(&file, &big).unwrap();
    // A body that announces its size is refused before it is sent (the client waits for the answer first).
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    write!(
        stream,
        "POST /api/v1/sources/abh_newcomers/files HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n",
        server.address,
        big.len() + 200
    )
    .unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&stream), &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // One that does not (chunked) is counted as it streams, and stopped past the limit: the server answers 413 and
    // closes, which a client still sending may see as a broken connection instead.
    let (content_type, body) = multipart(&[("neuzugewanderte_gross.csv".into(), big)], &[]);
    let spooled = dir.path().join("upload.body");
    std::fs::write(&spooled, body).unwrap();
    let file = runtime().block_on(tokio::fs::File::open(&spooled)).unwrap();
    let streamed = client()
        .post(server.url("/api/v1/sources/abh_newcomers/files"))
        .bearer_auth(&token)
        .header("Content-Type", &content_type)
        .body(file)
        .send();
    if let Ok(response) = streamed {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{}", response.text().unwrap());
    }
    assert_eq!(version(dir.path()), before);
    assert_eq!(months(dir.path()), ["2024-06"]);
    assert!(std::fs::read_dir(dir.path().join("warehouse/uploads")).unwrap().next().is_none());
}

#[test]
fn concurrent_uploads_and_a_cli_ingest_all_land() {
    let (dir, token) = upload_project();
    let server = start(dir.path());
    let before = version(dir.path()).unwrap();
    let file = |m: &str| dir.path().join(format!("sample-data/auslaenderbehoerde/neuzugewanderte_2024-{m}.csv"));
    let (a, b, c) = (file("07"), file("08"), file("09"));
    std::thread::scope(|scope| {
        let first = scope.spawn(|| upload(&server, &token, "abh_newcomers", std::slice::from_ref(&a)));
        let second = scope.spawn(|| upload(&server, &token, "abh_newcomers", std::slice::from_ref(&b)));
        let third = scope.spawn(|| cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", c.to_str().unwrap()]));
        for response in [first.join().unwrap(), second.join().unwrap()] {
            assert_eq!(response.status(), StatusCode::OK);
        }
        assert_eq!(third.join().unwrap().code, ExitCode::SUCCESS);
    });
    assert_eq!(months(dir.path()), ["2024-06", "2024-07", "2024-08", "2024-09"], "no ingest lost another's facts");
    assert_eq!(version(dir.path()), Some(before + 3), "three commits, one after the other");
}

/// The same question asked again is given the same answer, from memory and recorded in the audit log as asked (asked
/// by several at once, it is computed once); a commit — through the CLI, beside the server — changes the answer at
/// once; another role gets its own answer; with `answer_cache_mb = 0` every answer is computed. Expected answers:
/// the CLI's on the same warehouse.
#[test]
fn a_question_asked_again_gets_the_same_answer_until_a_commit_changes_it() {
    let (dir, _) = upload_project();
    let statistik = user(dir.path(), "sabine", "statistikstelle");
    let analyst = user(dir.path(), "kai", "kurstraeger");
    let args = ["newcomers", "-m", "persons", "-m", "records", "-d", "month", "-d", "district.area", "-f", "csv"];
    let path = "/api/v1/query?cube=newcomers&m=persons&m=records&d=month&d=district.area&format=csv";
    let out = dir.path().join("answer.csv");
    let expected = |role: &str| {
        let mut all = vec!["--role", role, "query"];
        all.extend(args);
        all.extend(["-o", out.to_str().unwrap()]);
        let local = cli(dir.path(), &all);
        assert_eq!(local.code, ExitCode::SUCCESS, "{}", local.stderr);
        std::fs::read_to_string(&out).unwrap()
    };
    // The audit log's queries: (computed, given again).
    let queries = || {
        let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        let entries = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
        let (repeated, computed): (Vec<_>, Vec<_>) =
            entries.filter(|e| e["kind"] == "query").partition(|e| e["repeated"] == true);
        (computed.len(), repeated)
    };
    let repeated = || queries().1;
    let server = start(dir.path());
    let ask = |token: &str| {
        let response = get(&server, path, token);
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().unwrap());
        (response.text().unwrap(), response.headers()["kubus-versions"].to_str().unwrap().to_owned())
    };
    let exact = expected("statistik");
    let (computed_before, _) = queries();
    // Six ask at once: one computes, the others wait for its answer.
    let answers: Vec<(String, String)> = std::thread::scope(|scope| {
        let asking: Vec<_> = (0..6).map(|_| scope.spawn(|| ask(&statistik))).collect();
        asking.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let (first, versions) = answers[0].clone();
    assert_eq!(first, exact);
    assert!(answers.iter().all(|a| *a == answers[0]), "the same answer, read at the same version");
    let (computed, given) = queries();
    assert_eq!((computed - computed_before, given.len()), (1, 5), "computed once, given again five times");
    let (again, versions_again) = ask(&statistik);
    assert_eq!((&again, &versions_again), (&first, &versions));
    let given = repeated();
    assert_eq!(given.len(), 6, "an answer given again is recorded as a query: {given:?}");
    assert_eq!((given[0]["role"].as_str(), given[0]["outcome"].as_str()), (Some("statistik"), Some("answered")));
    assert_eq!(given[0]["rows"].as_u64(), Some(csv_rows(&first).len() as u64));
    // Another role asks the same URL: its own protection, not the statistics office's exact numbers.
    let (protected, _) = ask(&analyst);
    assert_eq!(protected, expected("analyst"));
    assert_ne!(protected, first, "the cell key method changes some of the sample's cells");
    // A commit by the CLI beside the server: the next answer holds the new month.
    let july = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv");
    let ingest = cli(dir.path(), &["ingest", "--demo-key", "abh_newcomers", july.to_str().unwrap()]);
    assert_eq!(ingest.code, ExitCode::SUCCESS, "{}", ingest.stderr);
    let (after, versions_after) = ask(&statistik);
    assert_eq!(after, expected("statistik"));
    assert!(csv_rows(&after).iter().any(|r| r[0] == "2024-07") && after != first, "{after}");
    assert_ne!(versions_after, versions);
    assert_eq!(repeated().len(), 6, "computed anew, not given again");
    drop(server);
    // Without kept answers, every answer is computed.
    let config = dir.path().join("kubus.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("answer_cache_mb = 64", "answer_cache_mb = 0");
    std::fs::write(&config, text).unwrap();
    let server = start(dir.path());
    for _ in 0..2 {
        assert_eq!(get(&server, path, &statistik).text().unwrap(), after);
    }
    assert_eq!(repeated().len(), 6);
}

const CHILD_ARGS: &str = "KUBUS_SERVER_TEST_CLI_ARGS";
const THIS_TEST: &str = "server::a_server_killed_during_an_upload_leaves_the_previous_version";

#[test]
fn a_server_killed_during_an_upload_leaves_the_previous_version() {
    use std::io::Write as _;
    if let Ok(args) = std::env::var(CHILD_ARGS) {
        // Child mode: act as the `kubus` binary (here: `kubus serve`) until killed.
        let code = kubus_cli::run(args.split('\u{1f}').map(str::to_owned), &mut std::io::sink(), &mut std::io::sink());
        std::process::exit(if code == ExitCode::SUCCESS { 0 } else { 1 });
    }
    let (dir, token) = upload_project();
    let before = version(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let args = ["kubus", "-C", dir.path().to_str().unwrap(), "serve", "--listen", &address, "--demo-key"];
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", THIS_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ARGS, args.join("\u{1f}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let health = format!("http://{address}/healthz");
    let up = (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        client().get(&health).send().is_ok_and(|r| r.status() == StatusCode::OK)
    });
    assert!(up, "the server came up");
    // Half of an upload: the body announces more than it sends, and the server dies while it waits for the rest.
    let file = std::fs::read(dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv")).unwrap();
    let boundary = "kubusboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"neuzugewanderte_2024-07.csv\"\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "POST /api/v1/sources/abh_newcomers/files HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
        head.len() + file.len() + tail.len()
    )
    .unwrap();
    stream.write_all(&file[..file.len() / 2]).unwrap();
    stream.flush().unwrap();
    let uploads = dir.path().join("warehouse/uploads");
    // Up to 20 s: a machine busy with other tests may take its time (the wait ends as soon as the file is there).
    let receiving = (0..400).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        std::fs::read_dir(&uploads).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(receiving, "the server was receiving the upload");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stream);
    assert_eq!(version(dir.path()), before, "nothing of the half upload was committed");
    assert_eq!(months(dir.path()), ["2024-06"]);
    // A server started again clears what the killed one left, and takes the whole file.
    let server = start(dir.path());
    assert!(std::fs::read_dir(&uploads).unwrap().next().is_none(), "the half upload is gone");
    let path = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv");
    assert_eq!(upload(&server, &token, "abh_newcomers", &[path]).status(), StatusCode::OK);
    assert_eq!(months(dir.path()), ["2024-06", "2024-07"]);
}

#[test]
fn single_sign_on_is_accepted_from_the_configured_proxy_only() {
    let dir = project_copy();
    let path = dir.path().join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "anonymous = false",
        "anonymous = false\ntrusted_header = \"X-Remote-User\"\ntrusted_proxies = [\"127.0.0.1\"]",
    );
    std::fs::write(&path, &text).unwrap();
    let added = cli(dir.path(), &["user", "add", "KL\\abecker", "--group", "jugendamt"]);
    assert_eq!(added.code, ExitCode::SUCCESS, "{}", added.stderr);
    let users = std::fs::read_to_string(dir.path().join("users.toml")).unwrap();
    let two = cli(dir.path(), &["user", "add", "zwei", "--group", "jugendamt", "--group", "statistikstelle"]);
    assert_eq!(two.code, ExitCode::from(2), "groups of two roles: which role would be a guess");
    assert!(two.stderr.contains("different roles (jugendhilfe, statistik)"), "{}", two.stderr);
    assert_eq!(std::fs::read_to_string(dir.path().join("users.toml")).unwrap(), users, "nothing was added");
    let demo = cli(
        dir.path(),
        &["ingest", "--demo-key", "abh_newcomers", "sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv"],
    );
    assert_eq!(demo.code, ExitCode::SUCCESS, "{}", demo.stderr);
    let server = start(dir.path());
    let ask = |user: &str, path: &str| client().get(server.url(path)).header("X-Remote-User", user).send().unwrap();
    let me = json(ask("KL\\abecker", "/api/v1/me"));
    assert_eq!((me["user"].as_str(), me["role"].as_str()), (Some("KL\\abecker"), Some("jugendhilfe")));
    assert_eq!(ask("KL\\abecker", "/api/v1/query?cube=newcomers&m=persons&d=district").status(), StatusCode::FORBIDDEN);
    assert_eq!(ask("nobody", "/api/v1/me").status(), StatusCode::UNAUTHORIZED, "an unknown user is no one");
    drop(server);
    // From an address that is not the proxy, the header is refused.
    std::fs::write(&path, text.replace("trusted_proxies = [\"127.0.0.1\"]", "trusted_proxies = [\"10.1.2.3\"]"))
        .unwrap();
    let server = start(dir.path());
    let response = client().get(server.url("/api/v1/me")).header("X-Remote-User", "KL\\abecker").send().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json(response)["error"].as_str().unwrap().contains("trusted_proxies"));
    // Every request is in the audit log with user, role and client address, the refused ones too.
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let requests: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "request")
        .collect();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0]["user"], "KL\\abecker");
    assert_eq!(requests[0]["role"], "jugendhilfe");
    assert_eq!(requests[0]["client"], "127.0.0.1");
    assert_eq!(requests[1]["status"], 403);
    assert_eq!((requests[3]["status"].as_u64(), requests[3]["user"].is_null()), (Some(401), true));
    // A browser session opened through the proxy over HTTPS gets a Secure cookie, never sent over plain HTTP; the
    // protocol is the proxy's word only.
    let token = user(dir.path(), "tina", "statistikstelle");
    let session_cookie = |server: &Running, proto: Option<&str>| {
        let request = client().post(server.url("/api/v1/session")).basic_auth("tina", Some(&token));
        let request = match proto {
            Some(p) => request.header("X-Forwarded-Proto", p),
            None => request,
        };
        request.send().unwrap().headers()["set-cookie"].to_str().unwrap().to_owned()
    };
    assert!(!session_cookie(&server, Some("https")).contains("Secure"), "not from the configured proxy");
    drop(server);
    std::fs::write(&path, &text).unwrap();
    let server = start(dir.path());
    assert!(session_cookie(&server, Some("https")).ends_with("; Secure"));
    assert!(!session_cookie(&server, None).contains("Secure"));
}

#[test]
fn a_full_queue_answers_503_and_a_query_over_its_memory_fails_alone() {
    let (dir, token) = upload_project();
    let path = dir.path().join("kubus.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace("max_queries = 4 ", "max_queries = 1 ").replace("queue = 64 ", "queue = 0 ");
    std::fs::write(&path, text.replace("query_memory_mb = 2048", "query_memory_mb = 1")).unwrap();
    let server = start(dir.path());
    // Another ingest of the cube (here: this test) holds its lock, so the upload waits in its query slot.
    let lock = std::fs::File::create(dir.path().join("warehouse/locks/newcomers.lock")).unwrap();
    lock.lock().unwrap();
    let file = dir.path().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-07.csv");
    let size = std::fs::metadata(&file).unwrap().len();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| upload(&server, &token, "abh_newcomers", std::slice::from_ref(&file)));
        let uploads = dir.path().join("warehouse/uploads");
        let received = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(25));
            std::fs::read_dir(&uploads)
                .unwrap()
                .flatten()
                .any(|d| std::fs::metadata(d.path().join("neuzugewanderte_2024-07.csv")).is_ok_and(|m| m.len() == size))
        });
        assert!(received, "the upload arrived");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let busy = get(&server, "/api/v1/query?cube=newcomers&m=records", &token);
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()["retry-after"], "1");
        lock.unlock().unwrap();
        assert_eq!(waiting.join().unwrap().status(), StatusCode::OK, "the upload went on once the lock was free");
    });
    assert_eq!(months(dir.path()), ["2024-06", "2024-07"]);
    // One megabyte is too little for persons by every fine level from the facts of two years (12,420 cells): that
    // query fails, with a reason, and the server answers the next one.
    let mut earlier = vec!["ingest".to_owned(), "--demo-key".to_owned(), "abh_newcomers".to_owned()];
    for month in (1..=12).map(|m| format!("2023-{m:02}")).chain((1..=5).chain(8..=12).map(|m| format!("2024-{m:02}"))) {
        earlier.push(format!("sample-data/auslaenderbehoerde/neuzugewanderte_{month}.csv"));
    }
    let earlier: Vec<&str> = earlier.iter().map(String::as_str).collect();
    assert_eq!(cli(dir.path(), &earlier).code, ExitCode::SUCCESS);
    let heavy =
        "/api/v1/query?cube=newcomers&m=persons&d=district&d=age&d=nationality&d=month&d=language_level&rollups=never";
    let failed = get(&server, heavy, &token);
    assert_eq!(failed.status(), StatusCode::UNPROCESSABLE_ENTITY, "{}", failed.text().unwrap());
    assert!(json(failed)["error"].as_str().unwrap().contains("query_memory_mb"));
    assert_eq!(get(&server, "/api/v1/query?cube=newcomers&m=records&d=month", &token).status(), StatusCode::OK);
}

#[test]
fn a_report_runs_as_the_role_that_asks_and_its_files_are_its_own() {
    let (_, tokens, server) = shared();
    let reports = json(get(server, "/api/v1/reports", &tokens.statistik));
    assert!(reports.as_array().unwrap().iter().any(|r| r["name"] == "newcomers_monthly"));
    let run = |token: &str| {
        client()
            .post(server.url("/api/v1/reports/newcomers_monthly/runs?period=2024-06"))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    let ran = run(&tokens.statistik);
    assert_eq!(ran.status(), StatusCode::OK, "{}", ran.text().unwrap());
    let ran = json(ran);
    let html = ran["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).find(|f| f.ends_with(".html"));
    let html = html.expect("the run wrote its HTML").to_owned();
    let runs = json(get(server, "/api/v1/reports/newcomers_monthly/runs", &tokens.statistik));
    assert_eq!(runs, serde_json::json!(["2024-06"]));
    let page = get(server, &format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{html}"), &tokens.statistik);
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text().unwrap().contains(ran["title"].as_str().unwrap()));
    // Every file the run lists is served, those in its subfolders too.
    for file in ran["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()) {
        let url = format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{file}");
        assert_eq!(get(server, &url, &tokens.statistik).status(), StatusCode::OK, "{file}");
    }
    assert!(ran["files"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().contains('/')), "{ran}");
    // Another role has runs of its own, not the statistics office's.
    let other = get(server, &format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{html}"), &tokens.kurstraeger);
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    for escape in ["..%2F..%2F..%2F..%2Fkubus.toml", "%2Fetc%2Fpasswd"] {
        let response =
            get(server, &format!("/api/v1/reports/newcomers_monthly/runs/2024-06/{escape}"), &tokens.statistik);
        assert!(matches!(response.status(), StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND), "{escape}");
        assert!(!response.text().unwrap().contains("[server]"), "{escape}: the project file must not come back");
    }
    // The youth welfare office may not see the districts the report's tables show: refused with the rule.
    let refused = run(&tokens.jugendamt);
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(json(refused)["rule"].as_str().unwrap().contains("district"));
}

/// Connects over the PostgreSQL wire protocol as psql would: the user's name, a token as the password.
fn pg(server: &Running, user: &str, token: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let config = format!("host=127.0.0.1 port={} user={user} password={token} dbname=kubus", server.sql.port());
    runtime().block_on(async move {
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    })
}

/// The SQLSTATE and message of a failed connection or statement.
fn sql_error(e: &tokio_postgres::Error) -> (String, String) {
    let db = e.as_db_error().unwrap_or_else(|| panic!("not an error of the server: {e}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

#[test]
fn the_statistics_office_asks_sql_over_the_wire_protocol() {
    let (dir, tokens, server) = shared();
    let sql = pg(server, "sabine", &tokens.statistik).unwrap();
    // Extended protocol (a prepared statement with a parameter), as DBeaver and Metabase ask.
    let rows = runtime()
        .block_on(sql.query(
            "SELECT district, count(DISTINCT person_key) AS persons FROM newcomers WHERE month = $1 \
             GROUP BY district ORDER BY district",
            &[&"2024-06"],
        ))
        .unwrap();
    let over_sql: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // The same question as a cube query of the statistics office (exact numbers) through the CLI.
    let question = ["query", "newcomers", "-m", "persons", "-d", "district", "-c", "month=2024-06", "-f", "csv"];
    let out = cli(dir.path(), &[&["--role", "statistik"][..], &question].concat());
    assert_eq!(out.code, ExitCode::SUCCESS, "{}", out.stderr);
    let mut expected: Vec<(String, i64)> =
        csv_rows(&out.stdout).iter().map(|r| (r[0].clone(), r.last().unwrap().parse().unwrap())).collect();
    expected.sort();
    assert!(expected.len() > 3, "{expected:?}");
    assert_eq!(over_sql, expected);
    // Simple protocol, as psql asks: the catalogue of the session lists the views.
    let tables: Vec<String> =
        runtime()
            .block_on(sql.simple_query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
            ))
            .unwrap()
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
    assert!(tables.contains(&"newcomers".to_owned()), "{tables:?}");
}

#[test]
fn sql_over_the_wire_needs_a_token_and_a_role_with_sql() {
    let (_, tokens, server) = shared();
    let (code, message) = sql_error(&pg(server, "jonas", &tokens.jugendamt).unwrap_err());
    assert_eq!(code, "28000", "{message}");
    assert!(message.contains("may not use SQL") && message.contains("sql = true"), "{message}");
    let (code, _) = sql_error(&pg(server, "sabine", "kubus_0000").unwrap_err());
    assert_eq!(code, "28P01", "a wrong token is a wrong password");
    let (code, _) = sql_error(&pg(server, "jonas", &tokens.statistik).unwrap_err());
    assert_eq!(code, "28P01", "a token of another user is a wrong password");
}

#[test]
fn sql_over_the_wire_runs_queries_only_and_audits_every_statement() {
    let (dir, tokens, server) = shared();
    let sql = pg(server, "sabine", &tokens.statistik).unwrap();
    let written = dir.path().join("written-by-sql.csv");
    let attempts = [
        "CREATE TABLE copy_of AS SELECT * FROM newcomers".to_owned(),
        "SELECT 1 AS one INTO copy_of".to_owned(),
        format!("COPY (SELECT * FROM newcomers) TO '{}'", written.display()),
        "INSERT INTO newcomers (person_key) VALUES ('x')".to_owned(),
        "DROP VIEW newcomers".to_owned(),
    ];
    for statement in &attempts {
        let (code, message) = sql_error(&runtime().block_on(sql.simple_query(statement)).unwrap_err());
        assert_eq!(code, "25006", "{statement}: {message}");
        assert!(message.contains("read-only"), "{message}");
        let (code, _) = sql_error(&runtime().block_on(sql.prepare(statement)).unwrap_err());
        assert_eq!(code, "25006", "{statement} prepared");
    }
    assert!(!written.exists(), "nothing is written");
    // Nor are the server's limits lifted; a client's own settings are kept.
    let (code, _) =
        sql_error(&runtime().block_on(sql.simple_query("SET datafusion.runtime.memory_limit = '100G'")).unwrap_err());
    assert_eq!(code, "42501");
    runtime().block_on(sql.simple_query("SET application_name = 'DBeaver'")).unwrap();
    // Nor is any file of the server read, whatever the syntax.
    for statement in [
        "CREATE EXTERNAL TABLE secrets STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT pg_read_file('/etc/passwd')",
    ] {
        assert!(runtime().block_on(sql.simple_query(statement)).is_err(), "{statement}");
    }
    let count: i64 = runtime().block_on(sql.query_one("SELECT count(*) FROM newcomers", &[])).unwrap().get(0);
    assert!(count > 0);
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ours = |e: &&serde_json::Value| e["via"] == "postgres" && e["user"] == "sabine";
    let refused = entries.iter().filter(ours).filter(|e| e["status"].as_str().unwrap().starts_with("refused")).count();
    assert!(refused >= 2 * attempts.len(), "every refused statement is audited: {refused}");
    assert!(entries.iter().filter(ours).any(|e| e["kind"] == "sql-login" && e["role"] == "statistik"));
    assert!(
        entries
            .iter()
            .filter(ours)
            .any(|e| e["kind"] == "sql" && e["sql"].as_str().unwrap().contains("count(*)") && e["status"] == "ok")
    );
    let jonas = entries.iter().find(|e| e["via"] == "postgres" && e["user"] == "jonas" && e["kind"] == "sql-login");
    assert!(jonas.is_some_and(|e| e["status"].as_str().unwrap().contains("may not use SQL")));
}

#[test]
fn the_openapi_document_describes_what_the_server_answers() {
    let (_, tokens, server) = shared();
    let document = client().get(server.url("/api/v1/openapi.json")).send().unwrap();
    assert_eq!(document.status(), StatusCode::OK, "the document needs no identity");
    let document = json(document);
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"), "{}", document["openapi"]);
    assert_eq!(document["servers"][0]["url"], "/api/v1");
    let paths = document["paths"].as_object().unwrap();
    for (path, method) in [
        ("/me", "get"),
        ("/cubes", "get"),
        ("/cubes/{cube}/dimensions/{dimension}/members", "get"),
        ("/query", "get"),
        ("/query", "post"),
        ("/explain", "post"),
        ("/quarantine", "get"),
        ("/reports/{name}/runs", "post"),
        ("/reports/{name}/runs/{period}/{file}", "get"),
        ("/sources/{source}/files", "post"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is documented");
    }
    // Every documented parameter of GET /query is accepted, and every documented format is answered with a
    // documented media type.
    let get_query = &paths["/query"]["get"];
    let answer = &get_query["responses"]["200"];
    let answer = match answer.get("$ref").and_then(|r| r.as_str()) {
        Some(reference) => &document["components"]["responses"][reference.rsplit('/').next().unwrap()],
        None => answer,
    };
    let media: Vec<&str> = answer["content"].as_object().unwrap().keys().map(String::as_str).collect();
    let base = "/api/v1/query?cube=newcomers&m=persons&d=district.area&c=month=2024-06";
    for parameter in get_query["parameters"].as_array().unwrap() {
        let name = parameter["name"].as_str().unwrap();
        let value = match name {
            "cube" | "m" | "d" | "c" => continue,
            "measure" => "records",
            "drilldown" => "month",
            "cut" => "age=18..64",
            "totals" => "true",
            "order" => "-persons",
            "limit" | "as_of" => "0",
            "rollups" => "never",
            "format" => "csv",
            other => panic!("GET /query documents {other}: add it here"),
        };
        let response = get(server, &format!("{base}&{name}={value}"), &tokens.statistik);
        assert_eq!(response.status(), StatusCode::OK, "{name}={value}: {}", response.text().unwrap());
    }
    let formats =
        &get_query["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "format").unwrap()["schema"];
    let formats: Vec<&str> = formats["enum"]
        .as_array()
        .or_else(|| formats["oneOf"].as_array()?.iter().find_map(|s| s["enum"].as_array()))
        .unwrap_or_else(|| panic!("the formats are listed: {formats}"))
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert_eq!(formats.len(), 6, "{formats:?}");
    for format in formats {
        let response = get(server, &format!("{base}&format={format}"), &tokens.statistik);
        assert_eq!(response.status(), StatusCode::OK, "{format}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        let essence = content_type.split(';').next().unwrap();
        assert!(media.contains(&essence), "{format} answers {content_type}, documented are {media:?}");
    }
}
