//! The project file `kubus.toml`: where the warehouse lives, where the pseudonym key comes from, and what
//! `kubus demo` ingests and asks.

use crate::raw::RawProject;
use crate::{Diagnostic, Diagnostics, Error, Result};
use std::collections::BTreeMap;

/// Where the pseudonymisation key comes from.
#[derive(Debug, Clone, Default)]
pub struct PseudonymSettings {
    /// Environment variable holding the key (default `KUBUS_PSEUDONYM_KEY`).
    pub key_env: String,
    /// A key file, relative to the project (kept outside version control).
    pub key_file: Option<String>,
    /// A demo key for sample data only; announced on every use.
    pub demo_key: Option<String>,
}

/// How the counts of an answer are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The cell key method: every count gets the consistent noise of its cell (ad-hoc answers).
    CellKey,
    /// Small counts and the cells they could be recovered from are suppressed (fixed publications).
    Suppression,
}

impl Method {
    fn parse(text: &str) -> Option<Method> {
        match text {
            "cell_key" => Some(Method::CellKey),
            "suppression" => Some(Method::Suppression),
            _ => None,
        }
    }

    /// The method's name in `kubus.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Method::CellKey => "cell_key",
            Method::Suppression => "suppression",
        }
    }
}

/// The cell key method's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellKeySettings {
    /// The perturbation table (ONS format: pcv, ckey, pvalue), relative to the project.
    pub ptable: String,
    /// Values above the table's last row reuse its last `wrap` rows.
    pub wrap: u32,
    /// A magnitude (sum, average, minimum, maximum) is changed by 50 to 100 % of this many percent of the cell's
    /// largest single value (default 25).
    pub magnitude: u32,
}

impl CellKeySettings {
    /// The share of the largest value a magnitude's noise reaches, in percent, unless configured.
    pub const DEFAULT_MAGNITUDE: u32 = 25;
}

/// Statistical disclosure control: which counts are too small to publish and how suppressed cells look.
#[derive(Debug, Clone, PartialEq)]
pub struct DisclosureSettings {
    /// Counts from 1 to this are suppressed (default 2, Kaiserslautern's yearbook rule).
    pub threshold: u64,
    /// Shown instead of a suppressed value (default ".", as in federal statistics).
    pub symbol: String,
    /// Shown instead of a zero count (default "–", "nothing there"); zeros are not suppressed.
    pub zero_symbol: String,
    /// Cubes without data about persons, whose counts are published without suppression.
    pub exempt: Vec<String>,
    /// A sum with a declared contributor role is suppressed where one contributor holds this share or more.
    pub dominance: f64,
    /// Thresholds of single cubes.
    pub cube_thresholds: Vec<(String, u64)>,
    /// How ad-hoc answers are protected (default: the cell key method where a ptable is configured).
    pub method: Method,
    /// Cubes protected by a method of their own.
    pub cube_methods: Vec<(String, Method)>,
    /// The cell key method's table, if configured.
    pub cell_key: Option<CellKeySettings>,
}

impl Default for DisclosureSettings {
    fn default() -> Self {
        DisclosureSettings {
            threshold: 2,
            symbol: ".".into(),
            zero_symbol: "–".into(),
            exempt: Vec::new(),
            dominance: 0.85,
            cube_thresholds: Vec::new(),
            method: Method::Suppression,
            cube_methods: Vec::new(),
            cell_key: None,
        }
    }
}

impl DisclosureSettings {
    /// The threshold for a cube, `None` if the cube is exempt.
    pub fn threshold_for(&self, cube: &str) -> Option<u64> {
        if self.exempt.iter().any(|c| c == cube) {
            return None;
        }
        Some(self.cube_thresholds.iter().find(|(c, _)| c == cube).map_or(self.threshold, |(_, t)| *t))
    }

    /// How a cube's counts are protected for a role: the role's method, else the cube's, else the project's.
    pub fn method_for(&self, cube: &str, role: Option<&Role>) -> Method {
        role.and_then(|r| r.method)
            .or_else(|| self.cube_methods.iter().find(|(c, _)| c == cube).map(|(_, m)| *m))
            .unwrap_or(self.method)
    }
}

/// A role: who asks, and what the answers may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Role name, as given with `--role`.
    pub name: String,
    /// What the role is for.
    pub description: Option<String>,
    /// May see unsuppressed numbers (the statistics office).
    pub bypass_disclosure: bool,
    /// May run SQL over the facts (row by row, past disclosure control).
    pub sql: bool,
    /// The cubes the role may read (empty: all).
    pub cubes: Vec<String>,
    /// Per dimension, the finest level the role may drill to or cut on.
    pub finest: Vec<(String, String)>,
    /// Cuts (text form) applied to every query of the role.
    pub filter: Vec<String>,
    /// How the role's answers are protected, instead of the project's method.
    pub method: Option<Method>,
    /// May read the quarantine: rejected lines hold raw values of persons (names of columns, birth dates).
    pub quarantine: bool,
    /// The topics the role was given; their cubes are part of `cubes`.
    pub topics: Vec<String>,
}

/// A topic: a set of cubes that roles are given by name (the topic groups of the city's permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// What the topic covers.
    pub description: Option<String>,
    /// Its cubes.
    pub cubes: Vec<String>,
}

/// A user group of `kubus serve`: its members ask as one role, and may upload to some sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// What the group is.
    pub description: Option<String>,
    /// The role its members ask as.
    pub role: String,
    /// Sources its members may upload files to.
    pub ingest: Vec<String>,
}

/// How `kubus serve` runs: `[server]` of `kubus.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: String,
    /// Address for SQL over the PostgreSQL wire protocol (psql, DBeaver, Metabase), for roles with `sql = true`;
    /// none: no SQL port.
    pub sql_listen: Option<String>,
    /// The users file (users, their groups, hashes of their tokens), relative to the project (default
    /// `users.toml`).
    pub users: String,
    /// A header naming the user, set by the city's reverse proxy after single sign-on (e.g. `X-Remote-User`).
    pub trusted_header: Option<String>,
    /// Addresses the trusted header is accepted from (the reverse proxies); from anywhere else it is refused.
    pub trusted_proxies: Vec<String>,
    /// Whether requests without an identity are answered, with the most restrictive role.
    pub anonymous: bool,
    /// The largest upload in bytes.
    pub max_upload_bytes: u64,
    /// Queries answered at once.
    pub max_queries: usize,
    /// Requests waiting for a query slot before the server answers 503.
    pub queue: usize,
    /// Memory one query may use, in bytes.
    pub query_memory_bytes: u64,
    /// Memory for answers kept to be given again (the same question, role and format at the same warehouse
    /// versions), in bytes; 0 computes every answer.
    pub answer_cache_bytes: u64,
    /// Longest time a request may take, in seconds.
    pub timeout_seconds: u64,
    /// Where reports run through the server are written, one folder per role (relative to the project).
    pub reports: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            sql_listen: None,
            users: "users.toml".into(),
            trusted_header: None,
            trusted_proxies: Vec::new(),
            anonymous: false,
            max_upload_bytes: 256 << 20,
            max_queries: 4,
            queue: 64,
            query_memory_bytes: 2 << 30,
            answer_cache_bytes: 64 << 20,
            timeout_seconds: 300,
            reports: "reports/served".into(),
        }
    }
}

/// One ingest step of `kubus demo`.
#[derive(Debug, Clone)]
pub struct DemoIngest {
    /// Source name.
    pub source: String,
    /// Files or directories (all files inside, sorted), relative to the project.
    pub files: Vec<String>,
}

/// One example query of `kubus demo`, in the CLI's terms.
#[derive(Debug, Clone)]
pub struct DemoQuery {
    /// Heading printed above the result.
    pub title: String,
    /// Cube name.
    pub cube: String,
    /// Measures.
    pub measures: Vec<String>,
    /// Drilldowns (`dimension[.level]`).
    pub drilldowns: Vec<String>,
    /// Cuts (`level=value`, ...).
    pub cuts: Vec<String>,
    /// Whether to add totals.
    pub totals: bool,
}

/// The settings of the S3 client for a warehouse in a bucket, by name. Shown for debugging by their names only:
/// credentials are among them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StorageSettings(pub BTreeMap<String, String>);

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Where cube queries over the facts run (`[engine]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSettings {
    /// The Ballista scheduler that runs cube queries over the facts, as `host:port` (`cluster =
    /// "ballista://host:port"`); `None`: every query runs in this process.
    pub cluster: Option<String>,
    /// Facts of fewer bytes than this are read in this process even with a cluster (`local_below_mb`, default 64):
    /// sending a plan to a cluster costs more than reading a few megabytes.
    pub local_below: u64,
    /// A query on the cluster that has not been answered after this many seconds fails (`timeout_s`, default 1800):
    /// a lost executor must not leave a question waiting for ever.
    pub timeout_s: u64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings { cluster: None, local_below: EngineSettings::LOCAL_BELOW_MB << 20, timeout_s: 1800 }
    }
}

impl EngineSettings {
    /// Facts below this many megabytes stay in this process unless the project says otherwise.
    pub const LOCAL_BELOW_MB: u64 = 64;

    /// The scheduler's `host:port` of a `ballista://host:port` address, or why it is none.
    pub fn cluster_address(url: &str) -> std::result::Result<String, String> {
        let Some(rest) = url.strip_prefix("ballista://") else {
            return Err(format!("'{url}' is not a Ballista scheduler's address: write ballista://host:port"));
        };
        let rest = rest.trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(rest.to_owned()),
            _ => Err(format!("'{url}' names no host and port: write ballista://host:port (the scheduler's port)")),
        }
    }
}

/// The validated project file.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    /// Project name.
    pub name: String,
    /// Warehouse directory, relative to the project unless absolute; or `s3://bucket/prefix` for a warehouse in
    /// S3-compatible object storage.
    pub warehouse: String,
    /// For a warehouse in a bucket: the S3 client's settings from `[storage]` (over the `AWS_*` environment
    /// variables), by name; credentials among them are never printed.
    pub storage: StorageSettings,
    /// For a warehouse in a bucket: this machine's folder for staged facts, uploads and ingest locks (`[storage]
    /// work`, relative to the project; default `.kubus`).
    pub work: String,
    /// Where cube queries over the facts run.
    pub engine: EngineSettings,
    /// Schema directory, relative to the project.
    pub schemas: String,
    /// Pseudonymisation key settings.
    pub pseudonymisation: PseudonymSettings,
    /// Statistical disclosure control.
    pub disclosure: DisclosureSettings,
    /// The append-only query log, relative to the project unless absolute.
    pub audit_log: String,
    /// Roles by name.
    pub roles: Vec<Role>,
    /// Topics (sets of cubes) by name.
    pub topics: Vec<Topic>,
    /// User groups of `kubus serve`.
    pub groups: Vec<Group>,
    /// How `kubus serve` runs.
    pub server: ServerSettings,
    /// How many of a cube's latest facts versions keep their rollups (`[rollups] keep_versions`, at least 1): an
    /// earlier version is still answered, from its facts.
    pub rollup_versions: u64,
    /// What `kubus demo` ingests.
    pub demo_ingest: Vec<DemoIngest>,
    /// What `kubus demo` asks.
    pub demo_queries: Vec<DemoQuery>,
}

impl ProjectConfig {
    /// How many of the latest facts versions keep their rollups unless the project says otherwise: a year of
    /// monthly deliveries.
    pub const ROLLUP_VERSIONS: u64 = 12;

    /// A role by name.
    pub fn role(&self, name: &str) -> Result<&Role> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| crate::unknown("role", name, self.roles.iter().map(|r| &r.name)))
    }

    /// A user group by name.
    pub fn group(&self, name: &str) -> Result<&Group> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .ok_or_else(|| crate::unknown("group", name, self.groups.iter().map(|g| &g.name)))
    }

    /// A role by name, or none.
    pub fn role_opt(&self, name: Option<&str>) -> Result<Option<&Role>> {
        name.map(|n| self.role(n)).transpose()
    }

    /// Parses `kubus.toml` text; `origin` names the file in diagnostics.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let raw: RawProject = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            Error::Invalid(Diagnostics(vec![Diagnostic {
                file: origin.to_owned(),
                line,
                path: String::new(),
                message: e.message().to_owned(),
                alternatives: Vec::new(),
            }]))
        })?;
        let p = raw.pseudonymisation;
        let demo = raw.demo;
        let defaults = DisclosureSettings::default();
        let mut problems = Vec::new();
        let mut method = |text: Option<String>, path: String| -> Option<Method> {
            let text = text?;
            let parsed = Method::parse(&text);
            if parsed.is_none() {
                problems.push(Diagnostic {
                    file: origin.to_owned(),
                    line: None,
                    path,
                    message: format!("unknown disclosure method '{text}'"),
                    alternatives: vec!["cell_key".into(), "suppression".into()],
                });
            }
            parsed
        };
        let disclosure = match raw.disclosure {
            None => defaults,
            Some(d) => {
                let cell_key = d.cell_key.map(|c| CellKeySettings {
                    ptable: c.ptable,
                    wrap: c.wrap.unwrap_or(1),
                    magnitude: c.magnitude.unwrap_or(CellKeySettings::DEFAULT_MAGNITUDE),
                });
                let default_method = if cell_key.is_some() { Method::CellKey } else { Method::Suppression };
                DisclosureSettings {
                    threshold: d.threshold.unwrap_or(defaults.threshold),
                    symbol: d.symbol.unwrap_or(defaults.symbol),
                    zero_symbol: d.zero_symbol.unwrap_or(defaults.zero_symbol),
                    exempt: d.exempt,
                    dominance: d.dominance.unwrap_or(defaults.dominance),
                    cube_thresholds: d.cubes.iter().filter_map(|(c, t)| Some((c.clone(), t.threshold?))).collect(),
                    method: method(d.method, "disclosure.method".into()).unwrap_or(default_method),
                    cube_methods: d
                        .cubes
                        .into_iter()
                        .filter_map(|(c, t)| {
                            let path = format!("disclosure.cubes.{c}.method");
                            Some((c, method(t.method, path)?))
                        })
                        .collect(),
                    cell_key,
                }
            }
        };
        let topics: Vec<Topic> = raw
            .topics
            .into_iter()
            .map(|(name, t)| Topic { name, description: t.description, cubes: t.cubes })
            .collect();
        let mut more = Vec::new();
        let mut problem = |path: String, message: String, alternatives: Vec<String>| {
            more.push(Diagnostic { file: origin.to_owned(), line: None, path, message, alternatives })
        };
        let mut roles: Vec<Role> = Vec::new();
        for (name, r) in raw.roles {
            let mut cubes = r.cubes;
            for topic in &r.topics {
                match topics.iter().find(|t| &t.name == topic) {
                    Some(t) => cubes.extend(t.cubes.iter().filter(|c| !cubes.contains(c)).cloned().collect::<Vec<_>>()),
                    None => problem(
                        format!("roles.{name}.topics"),
                        format!("unknown topic '{topic}'"),
                        topics.iter().map(|t| t.name.clone()).collect(),
                    ),
                }
            }
            roles.push(Role {
                method: method(r.method, format!("roles.{name}.method")),
                name,
                description: r.description,
                bypass_disclosure: r.bypass_disclosure,
                sql: r.sql,
                cubes,
                finest: r.finest.into_iter().collect(),
                filter: r.filter,
                quarantine: r.quarantine,
                topics: r.topics,
            });
        }
        let mut groups = Vec::new();
        for (name, g) in raw.groups {
            if !roles.iter().any(|r| r.name == g.role) {
                problem(
                    format!("groups.{name}.role"),
                    format!("unknown role '{}'", g.role),
                    roles.iter().map(|r| r.name.clone()).collect(),
                );
            }
            groups.push(Group { name, description: g.description, role: g.role, ingest: g.ingest });
        }
        let server = server_settings(raw.server, &mut problem);
        let rollup_versions = raw.rollups.and_then(|r| r.keep_versions).unwrap_or(ProjectConfig::ROLLUP_VERSIONS);
        if rollup_versions == 0 {
            problem(
                "rollups.keep_versions".into(),
                "keep_versions must be at least 1: the latest version's rollups answer its queries, and the next \
                 version's are merged from them"
                    .into(),
                Vec::new(),
            );
        }
        problems.extend(more);
        let uses_cell_key = disclosure.method == Method::CellKey
            || disclosure.cube_methods.iter().any(|(_, m)| *m == Method::CellKey)
            || roles.iter().any(|r| r.method == Some(Method::CellKey));
        if uses_cell_key && disclosure.cell_key.is_none() {
            problems.push(Diagnostic {
                file: origin.to_owned(),
                line: None,
                path: "disclosure.cell_key".into(),
                message:
                    "the cell key method needs a perturbation table: [disclosure.cell_key] ptable = \"ptables/….csv\""
                        .into(),
                alternatives: Vec::new(),
            });
        }
        if let Some(c) = disclosure.cell_key.as_ref().filter(|c| !(1..=100).contains(&c.magnitude)) {
            problems.push(Diagnostic {
                file: origin.to_owned(),
                line: None,
                path: "disclosure.cell_key.magnitude".into(),
                message: format!(
                    "magnitude is a percentage of a cell's largest value from 1 to 100, not {}",
                    c.magnitude
                ),
                alternatives: Vec::new(),
            });
        }
        let mut storage = BTreeMap::new();
        let mut work = ".kubus".to_owned();
        for (key, value) in raw.storage {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Integer(n) => n.to_string(),
                other => {
                    problems.push(Diagnostic {
                        file: origin.to_owned(),
                        line: None,
                        path: format!("storage.{key}"),
                        message: format!(
                            "a setting of the S3 client is text, a number or true/false, not {}",
                            other.type_str()
                        ),
                        alternatives: Vec::new(),
                    });
                    continue;
                }
            };
            match key.as_str() {
                "work" => work = text,
                _ => {
                    storage.insert(key, text);
                }
            }
        }
        let mut engine = EngineSettings::default();
        if let Some(raw) = raw.engine {
            if let Some(mb) = raw.local_below_mb {
                engine.local_below = mb.saturating_mul(1 << 20);
            }
            if let Some(seconds) = raw.timeout_s {
                engine.timeout_s = seconds.max(1);
            }
            match raw.cluster.as_deref().map(EngineSettings::cluster_address) {
                Some(Ok(address)) => engine.cluster = Some(address),
                Some(Err(message)) => problems.push(Diagnostic {
                    file: origin.to_owned(),
                    line: None,
                    path: "engine.cluster".into(),
                    message,
                    alternatives: Vec::new(),
                }),
                None => {}
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(Diagnostics(problems)));
        }
        Ok(ProjectConfig {
            engine,
            name: raw.name,
            warehouse: raw.warehouse.unwrap_or_else(|| "warehouse".into()),
            work,
            storage: StorageSettings(storage),
            schemas: raw.schemas.unwrap_or_else(|| "cube-schemas".into()),
            pseudonymisation: PseudonymSettings {
                key_env: p.as_ref().and_then(|p| p.key_env.clone()).unwrap_or_else(|| "KUBUS_PSEUDONYM_KEY".into()),
                key_file: p.as_ref().and_then(|p| p.key_file.clone()),
                demo_key: p.and_then(|p| p.demo_key),
            },
            disclosure,
            audit_log: raw.audit_log.unwrap_or_else(|| "audit.jsonl".into()),
            roles,
            topics,
            groups,
            server,
            rollup_versions,
            demo_ingest: demo
                .as_ref()
                .map(|d| {
                    d.ingest.iter().map(|i| DemoIngest { source: i.source.clone(), files: i.files.clone() }).collect()
                })
                .unwrap_or_default(),
            demo_queries: demo
                .map(|d| {
                    d.queries
                        .into_iter()
                        .map(|q| DemoQuery {
                            title: q.title,
                            cube: q.cube,
                            measures: q.measures,
                            drilldowns: q.drilldowns,
                            cuts: q.cuts,
                            totals: q.totals,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// `[server]` with its defaults; a listen address or proxy address that is not one is a problem.
fn server_settings(
    raw: Option<crate::raw::RawServer>,
    problem: &mut dyn FnMut(String, String, Vec<String>),
) -> ServerSettings {
    let defaults = ServerSettings::default();
    let Some(s) = raw else { return defaults };
    for (key, listen) in [("server.listen", &s.listen), ("server.sql_listen", &s.sql_listen)] {
        if let Some(listen) = listen
            && listen.parse::<std::net::SocketAddr>().is_err()
        {
            problem(key.into(), format!("'{listen}' is not an address and port like 127.0.0.1:8080"), vec![]);
        }
    }
    for proxy in &s.trusted_proxies {
        if proxy.parse::<std::net::IpAddr>().is_err() {
            problem("server.trusted_proxies".into(), format!("'{proxy}' is not an IP address"), vec![]);
        }
    }
    if s.trusted_header.is_some() && s.trusted_proxies.is_empty() {
        problem(
            "server.trusted_proxies".into(),
            "a trusted header needs the addresses of the proxies that set it (anyone else could send it)".into(),
            vec![],
        );
    }
    const MB: u64 = 1 << 20;
    ServerSettings {
        listen: s.listen.unwrap_or(defaults.listen),
        sql_listen: s.sql_listen,
        users: s.users.unwrap_or(defaults.users),
        trusted_header: s.trusted_header,
        trusted_proxies: s.trusted_proxies,
        anonymous: s.anonymous,
        max_upload_bytes: s.max_upload_mb.map_or(defaults.max_upload_bytes, |m| m * MB),
        max_queries: s.max_queries.unwrap_or(defaults.max_queries).max(1),
        queue: s.queue.unwrap_or(defaults.queue),
        query_memory_bytes: s.query_memory_mb.map_or(defaults.query_memory_bytes, |m| m * MB),
        answer_cache_bytes: s.answer_cache_mb.map_or(defaults.answer_cache_bytes, |m| m * MB),
        timeout_seconds: s.timeout_seconds.unwrap_or(defaults.timeout_seconds).max(1),
        reports: s.reports.unwrap_or(defaults.reports),
    }
}
