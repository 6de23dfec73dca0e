//! An ingest's report as JSON: the CLI's line accounting per file (`lines = accepted + rejected + skipped`), the
//! rejected lines, what was replaced, and the cube's new version.

use kubus::{FileOutcome, IngestReport};
use serde_json::{Value, json};

/// The report; a rejected line's raw value and reason (which quotes it) only for a role that may read the
/// quarantine — the others learn where and what kind of problem, not a person's values.
pub(crate) fn ingest_json(report: &IngestReport, raw_values: bool) -> Value {
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            match &f.outcome {
                FileOutcome::AlreadyIngested => {
                    json!({"file": name, "sha256": f.sha256, "outcome": "already_ingested"})
                }
                FileOutcome::Ingested(c) => json!({
                    "file": name,
                    "sha256": f.sha256,
                    "outcome": "ingested",
                    "lines": c.lines,
                    "accepted": c.accepted,
                    "rejected": c.rejected,
                    "skipped": c.skipped.iter().map(|(reason, n)| json!({"reason": reason, "lines": n})).collect::<Vec<_>>(),
                    "facts": c.facts,
                    "totals_compared": c.totals_compared,
                    "warnings": c.warnings,
                    "encoding": c.encoding,
                }),
            }
        })
        .collect();
    let rejected: Vec<Value> = report
        .rejected
        .iter()
        .map(|r| {
            let mut line = json!({"file": r.file, "line": r.line, "column": r.column, "problem": r.problem});
            if raw_values {
                line["value"] = r.value.clone().into();
                line["reason"] = r.reason.clone().into();
            }
            line
        })
        .collect();
    let totals = report.totals();
    json!({
        "source": report.source,
        "cube": report.cube,
        "version": report.version,
        "files": files,
        "lines": totals.lines,
        "accepted": totals.accepted,
        "rejected_lines": totals.rejected,
        "skipped": totals.skipped_lines(),
        "facts": totals.facts,
        "rejected": rejected,
        "replaced": report.replaced.iter().map(|r| json!({"file": r.file, "facts": r.facts, "whole_file": r.whole_file})).collect::<Vec<_>>(),
        "rollups": report.rollups.iter().map(|r| json!({"name": r.name, "rows": r.rows})).collect::<Vec<_>>(),
        "rollup_problem": report.rollup_problem,
    })
}
