//! Quarantine files: one CSV per source with every rejected line (file, line, column, value, problem, reason).
//! Re-ingesting a file replaces that file's lines, so the quarantine always reflects the latest attempt; the file
//! is replaced whole (in a directory: written to a temporary file, then renamed).

use crate::{Error, Result, Warehouse};
use std::collections::BTreeSet;
use std::path::PathBuf;

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

impl Warehouse {
    /// Reads `quarantine/<source>.csv`; a source without a quarantine file has no rejected lines.
    pub fn read_quarantine(&self, source: &str) -> Result<Vec<QuarantineRow>> {
        let rel = format!("quarantine/{source}.csv");
        let io = |source| Error::Quarantine { path: self.store.display(&rel), source };
        let bytes = self.store.read(&rel).map_err(io)?;
        rows(bytes.as_deref().unwrap_or_default()).map_err(io)
    }

    /// Replaces the quarantine lines of `files` in `quarantine/<source>.csv` by `rows`; returns where the file is.
    /// Lines of other files that another machine's ingest writes meanwhile stay (a conditional write in a bucket).
    pub fn write_quarantine(&self, source: &str, files: &BTreeSet<String>, rows: &[QuarantineRow]) -> Result<PathBuf> {
        let rel = format!("quarantine/{source}.csv");
        let io = |source| Error::Quarantine { path: self.store.display(&rel), source };
        self.store
            .update(&rel, |before: Option<&[u8]>| {
                let mut kept: Vec<QuarantineRow> =
                    self::rows(before.unwrap_or_default())?.into_iter().filter(|r| !files.contains(&r.file)).collect();
                kept.extend(rows.iter().cloned());
                kept.sort();
                text(&kept)
            })
            .map_err(io)?;
        Ok(self.store.display(&rel))
    }
}

/// The rows of a quarantine file's text.
fn rows(text: &[u8]) -> std::io::Result<Vec<QuarantineRow>> {
    let mut reader = csv::Reader::from_reader(text);
    let mut rows = Vec::new();
    for record in reader.records() {
        let r = record?;
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

/// A quarantine file's text of `rows`.
fn text(rows: &[QuarantineRow]) -> std::io::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER)?;
    for r in rows {
        let line = r.line.to_string();
        writer.write_record([&r.file, &line, &r.column, &r.value, &r.problem, &r.reason])?;
    }
    writer.into_inner().map_err(|e| e.into_error())
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
        let warehouse = Warehouse::open(dir.path()).unwrap();
        let all: BTreeSet<String> = ["a.csv".to_owned(), "b.csv".to_owned()].into();
        warehouse.write_quarantine("s", &all, &[row("a.csv", 3), row("b.csv", 5)]).unwrap();
        let only_a: BTreeSet<String> = ["a.csv".to_owned()].into();
        let path = warehouse.write_quarantine("s", &only_a, &[row("a.csv", 7)]).unwrap();
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
