//! An ingest's report as the server answers it: the CLI's line accounting per file (`lines = accepted + rejected +
//! skipped`), the rejected lines, what was replaced, and the cube's new version.

use kubus::{FileOutcome, FileReport, IngestReport};
use serde::Serialize;
use utoipa::ToSchema;

/// What an upload did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IngestAnswer {
    /// The source.
    source: String,
    /// Its cube.
    cube: String,
    /// The cube's version after the commit (none: nothing was committed).
    version: Option<u64>,
    /// Each file.
    files: Vec<FileAnswer>,
    /// Lines of all files.
    lines: usize,
    /// Lines accepted.
    accepted: usize,
    /// Lines rejected (in the quarantine).
    rejected_lines: usize,
    /// Lines skipped with a reason (header, empty, totals).
    skipped: usize,
    /// Facts written.
    facts: usize,
    /// The rejected lines.
    rejected: Vec<RejectedLine>,
    /// Facts of earlier deliveries this one replaced.
    replaced: Vec<ReplacedFile>,
    /// Rollups rebuilt.
    rollups: Vec<RollupRows>,
    /// Why rollups could not be rebuilt (queries then read the facts).
    rollup_problem: Option<String>,
    /// Facts versions whose rollups were removed (`[rollups] keep_versions`; queries as of them read the facts).
    rollups_removed: Vec<u64>,
}

/// One file of an upload.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum FileAnswer {
    /// Its content was ingested before: nothing changed.
    AlreadyIngested {
        /// File name.
        file: String,
        /// SHA-256 of its bytes.
        sha256: String,
    },
    /// Ingested.
    Ingested(FileLines),
    /// Read and converted, but the ingest was refused at its commit: none of its facts was stored.
    NotCommitted(FileLines),
}

/// The line accounting of one file read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct FileLines {
    /// File name.
    file: String,
    /// SHA-256 of its bytes.
    sha256: String,
    /// Lines of the file.
    lines: usize,
    /// Lines accepted.
    accepted: usize,
    /// Lines rejected.
    rejected: usize,
    /// Lines skipped, by reason.
    skipped: Vec<Skipped>,
    /// Facts written (or, not committed, that would have been).
    facts: usize,
    /// Totals of the export compared with the sum of its lines.
    totals_compared: usize,
    /// Lines of totals whose totals matched the sums exactly.
    total_lines_exact: usize,
    /// Lines of totals that matched only within the source's `total_tolerance`.
    total_lines_within: usize,
    /// Lines of totals that did not match (rejected as `total mismatch`).
    total_lines_mismatched: usize,
    /// Warnings.
    warnings: Vec<String>,
    /// The text encoding read.
    encoding: String,
}

impl FileAnswer {
    /// A file of an ingest that was `committed`, or refused at its commit.
    pub(crate) fn new(f: &FileReport, committed: bool) -> FileAnswer {
        let file = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let sha256 = f.sha256.clone();
        let c = match &f.outcome {
            FileOutcome::AlreadyIngested => return FileAnswer::AlreadyIngested { file, sha256 },
            FileOutcome::Ingested(c) => c,
        };
        let lines = FileLines {
            file,
            sha256,
            lines: c.lines,
            accepted: c.accepted,
            rejected: c.rejected,
            skipped: c.skipped.iter().map(|(reason, lines)| Skipped { reason: reason.to_string(), lines }).collect(),
            facts: c.facts,
            totals_compared: c.totals_compared,
            total_lines_exact: c.total_lines.exact,
            total_lines_within: c.total_lines.within,
            total_lines_mismatched: c.total_lines.mismatched,
            warnings: c.warnings.clone(),
            encoding: c.encoding.clone(),
        };
        if committed { FileAnswer::Ingested(lines) } else { FileAnswer::NotCommitted(lines) }
    }
}

/// Lines skipped for one reason.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Skipped {
    reason: String,
    lines: usize,
}

/// A rejected line: where and what kind of problem; its raw value and the full reason only for a role that may read
/// the quarantine.
#[derive(Debug, Serialize, ToSchema)]
struct RejectedLine {
    file: String,
    line: usize,
    column: String,
    problem: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// Facts of an earlier delivery replaced by this one.
#[derive(Debug, Serialize, ToSchema)]
struct ReplacedFile {
    file: String,
    facts: usize,
    whole_file: bool,
}

/// A rollup rebuilt, and its rows.
#[derive(Debug, Serialize, ToSchema)]
struct RollupRows {
    name: String,
    rows: u64,
}

impl IngestAnswer {
    /// The answer for `report`; a rejected line's raw value and reason (which quotes it) only with `raw_values` —
    /// the others learn where and what kind of problem, not a person's values.
    pub(crate) fn new(report: &IngestReport, raw_values: bool) -> IngestAnswer {
        let files = report.files.iter().map(|f| FileAnswer::new(f, true)).collect();
        let rejected = report
            .rejected
            .iter()
            .map(|r| RejectedLine {
                file: r.file.clone(),
                line: r.line,
                column: r.column.clone(),
                problem: r.problem.clone(),
                value: raw_values.then(|| r.value.clone()),
                reason: raw_values.then(|| r.reason.clone()),
            })
            .collect();
        let totals = report.totals();
        IngestAnswer {
            source: report.source.clone(),
            cube: report.cube.clone(),
            version: report.version,
            files,
            lines: totals.lines,
            accepted: totals.accepted,
            rejected_lines: totals.rejected,
            skipped: totals.skipped_lines(),
            facts: totals.facts,
            rejected,
            replaced: report
                .replaced
                .iter()
                .map(|r| ReplacedFile { file: r.file.clone(), facts: r.facts, whole_file: r.whole_file })
                .collect(),
            rollups: report.rollups.iter().map(|r| RollupRows { name: r.name.clone(), rows: r.rows }).collect(),
            rollup_problem: report.rollup_problem.clone().or_else(|| {
                report.pruned.as_ref().err().map(|e| format!("the rollups of earlier versions were not removed: {e}"))
            }),
            rollups_removed: report.pruned.as_ref().map(|p| p.versions.clone()).unwrap_or_default(),
        }
    }
}
