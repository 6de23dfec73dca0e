//! Readers a city adds for formats of its own (fixed-width text, a register's XML, JSON lines): a
//! [`RecordReader`] turns a file's bytes into records with their lines, registered by name in [`Readers`] and named
//! by a source's `type = "custom"`, `reader = "…"`. kubus applies the source's layout and mapping to the records as
//! to a CSV file's. The readers' records are checked to cover each line once, in order.

use crate::error::{Error, Result};
use crate::rows::Row;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A reader of one file format: the records of a whole file, each with its 1-based first line, the physical lines
/// it covers (1 unless a record runs over several) and its cells. Every line of the file belongs to one record —
/// an empty line is a record without cells — so that kubus can account for each.
pub trait RecordReader: Send + Sync {
    /// The records of the file `name` (its bytes), read as the source's `[format.options]` say. An `Err` says in
    /// a sentence why the file cannot be read; nothing of it is then ingested.
    fn records(
        &self,
        name: &str,
        bytes: &[u8],
        options: &BTreeMap<String, String>,
    ) -> std::result::Result<Vec<Row>, String>;
}

/// The readers registered for custom formats, by name.
#[derive(Clone, Default)]
pub struct Readers(BTreeMap<String, Arc<dyn RecordReader>>);

impl Readers {
    /// Registers `reader` under `name` (replacing one registered before under it).
    pub fn add(&mut self, name: &str, reader: impl RecordReader + 'static) {
        self.0.insert(name.to_owned(), Arc::new(reader));
    }

    /// The names registered.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// The records of the file `name` by the reader registered as `reader`, checked to cover its lines once each,
    /// in order, from line 1 on.
    pub(crate) fn records(
        &self,
        reader: &str,
        name: &str,
        bytes: &[u8],
        options: &BTreeMap<String, String>,
    ) -> Result<Vec<Row>> {
        let Some(read) = self.0.get(reader) else {
            return Err(Error::NoReader { file: name.to_owned(), reader: reader.to_owned(), known: self.names() });
        };
        let failed =
            |problem: String| Error::ReaderFailed { file: name.to_owned(), reader: reader.to_owned(), problem };
        let rows = read.records(name, bytes, options).map_err(failed)?;
        let mut next = 1;
        for row in &rows {
            if row.line != next || row.span == 0 {
                return Err(failed(format!(
                    "it gave a record of line {} covering {} line(s) where line {next} was next: every line must \
                     belong to one record, in order",
                    row.line, row.span
                )));
            }
            next += row.span;
        }
        Ok(rows)
    }
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}
