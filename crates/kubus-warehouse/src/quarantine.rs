//! Quarantine files: one CSV per source with every rejected line (file, line, column, value, problem, reason).
//! Re-ingesting a file replaces that file's lines, so the quarantine always reflects the latest attempt; the file
//! is replaced atomically (write to a temporary file, then rename).

use crate::{Error, Result};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// One rejected line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuarantineRow {
    /// Input file name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Input column at fault (empty for whole-line problems).
    pub column: String,
    /// Offending value.
    pub value: String,
    /// Short category.
    pub problem: String,
    /// Full explanation.
    pub reason: String,
}

const HEADER: [&str; 6] = ["file", "line", "column", "value", "problem", "reason"];

/// Reads `dir/<source>.csv`; a source without a quarantine file has no rejected lines.
pub fn read_quarantine(dir: &Path, source: &str) -> Result<Vec<QuarantineRow>> {
    let path = dir.join(format!("{source}.csv"));
    if !path.exists() {
        return Ok(Vec::new());
    }
    let io = |source| Error::Quarantine { path: path.clone(), source };
    let mut reader = csv::Reader::from_path(&path).map_err(|e| io(e.into()))?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record.map_err(|e| io(e.into()))?;
        rows.push(QuarantineRow {
            file: r.get(0).unwrap_or_default().to_owned(),
            line: r.get(1).and_then(|l| l.parse().ok()).unwrap_or_default(),
            column: r.get(2).unwrap_or_default().to_owned(),
            value: r.get(3).unwrap_or_default().to_owned(),
            problem: r.get(4).unwrap_or_default().to_owned(),
            reason: r.get(5).unwrap_or_default().to_owned(),
        });
    }
    Ok(rows)
}

/// Replaces the quarantine lines of `files` in `dir/<source>.csv` by `rows`; returns the file's path.
pub fn write_quarantine(dir: &Path, source: &str, files: &BTreeSet<String>, rows: &[QuarantineRow]) -> Result<PathBuf> {
    let path = dir.join(format!("{source}.csv"));
    let io = |source| Error::Quarantine { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut kept: Vec<QuarantineRow> =
        read_quarantine(dir, source)?.into_iter().filter(|r| !files.contains(&r.file)).collect();
    kept.extend(rows.iter().cloned());
    kept.sort();
    let tmp = dir.join(format!(".{source}.csv.tmp"));
    {
        let mut writer = csv::Writer::from_path(&tmp).map_err(|e| io(e.into()))?;
        writer.write_record(HEADER).map_err(|e| io(e.into()))?;
        for r in &kept {
            let line = r.line.to_string();
            writer
                .write_record([&r.file, &line, &r.column, &r.value, &r.problem, &r.reason])
                .map_err(|e| io(e.into()))?;
        }
        writer.flush().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(file: &str, line: usize) -> QuarantineRow {
        QuarantineRow {
            file: file.into(),
            line,
            column: "c".into(),
            value: "v;\"x\"".into(),
            problem: "p".into(),
            reason: "r".into(),
        }
    }

    #[test]
    fn re_ingest_replaces_only_that_files_lines() {
        let dir = tempfile::tempdir().unwrap();
        let all: BTreeSet<String> = ["a.csv".to_owned(), "b.csv".to_owned()].into();
        write_quarantine(dir.path(), "s", &all, &[row("a.csv", 3), row("b.csv", 5)]).unwrap();
        let only_a: BTreeSet<String> = ["a.csv".to_owned()].into();
        let path = write_quarantine(dir.path(), "s", &only_a, &[row("a.csv", 7)]).unwrap();
        let lines: Vec<String> = csv::Reader::from_path(path)
            .unwrap()
            .records()
            .map(|r| {
                let r = r.unwrap();
                format!("{}:{}:{}", &r[0], &r[1], &r[3])
            })
            .collect();
        assert_eq!(lines, ["a.csv:7:v;\"x\"", "b.csv:5:v;\"x\""]);
    }
}
