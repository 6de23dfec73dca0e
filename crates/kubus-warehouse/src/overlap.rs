//! The same data delivered twice: facts of an ingest for cells that another file already brought, in the table or
//! in the same ingest. Without a check an export and then the same data as a workbook (or a truncated file and
//! then the whole one) would be added up in silence; a source whose deliveries truly add says so
//! (`on_overlap = "add"`), and facts a replace key replaces are no longer there to overlap.
//!
//! Cells are compared by a 64-bit hash of their members (and unit): the side held in memory for the join is
//! the hash, the values present and the file, not the members' texts (a whole table delivered again would
//! otherwise hold every text of both). Two different cells share a hash with a chance of about n·m / 2⁶⁴ — below
//! 10⁻⁵ for ten million facts against ten million; such a coincidence refuses the ingest (never adds a wrong
//! number), and the refusal names the cell, so it can be checked.

use crate::FILE_COLUMN;
use datafusion::arrow::array::{Array, AsArray as _};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::functions_aggregate::expr_fn::{count_distinct, min};
use datafusion::logical_expr::{ColumnarValue, Expr, JoinType, ScalarUDF, Volatility, cast, create_udf};
use datafusion::prelude::{DataFrame, concat_ws, ident, lit};
use std::sync::Arc;

/// The column of a side holding its cell's hash.
const CELL: &str = "_cell";

/// What makes two facts the same: the columns that name a cell, and the values it may hold.
#[derive(Debug, Clone, Default)]
pub struct Cells {
    /// The dimension roles at the fact level.
    pub columns: Vec<String>,
    /// The unit (the person) where facts are persons: part of the cell, never shown in a refusal (whoever
    /// ingests would learn that another office's data holds that person).
    pub unit: Option<String>,
    /// The value columns: two facts of one cell overlap where both hold a value of one of them. Empty: every
    /// fact is a value (the cube counts its facts), so any two facts of one cell overlap.
    pub values: Vec<String>,
}

/// Facts of one file for cells another file already holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The file of this ingest.
    pub file: String,
    /// The file that already holds the cells.
    pub other: String,
    /// Whether `other` is a file of the same ingest (else it is in the table).
    pub same_ingest: bool,
    /// How many cells both hold.
    pub cells: usize,
    /// One of them, as `role=member, …`.
    pub example: String,
}

/// The overlaps of the new facts (`new`, with their file in [`FILE_COLUMN`]) with the facts of the table that stay
/// (`old`, already cut to those a replace key keeps and, where it can tell, to the new facts' periods), and among
/// the new facts' files when there are several, largest first.
pub(crate) async fn overlaps(
    new: impl Fn() -> datafusion::error::Result<DataFrame>,
    old: Option<DataFrame>,
    several_files: bool,
    cells: &Cells,
) -> datafusion::error::Result<Vec<Overlap>> {
    let mut found = Vec::new();
    let hash = cell_hash(cells.columns.len() + usize::from(cells.unit.is_some()));
    if let Some(old) = old {
        let (n, o) = (side(new()?, cells, &hash, "n", true)?, side(old, cells, &hash, "o", false)?);
        found.extend(pairs(n, o, cells, false).await?);
    }
    if several_files {
        let (n, o) = (side(new()?, cells, &hash, "n", true)?, side(new()?, cells, &hash, "o", false)?);
        found.extend(pairs(n, o, cells, true).await?);
    }
    found.sort_by(|a, b| b.cells.cmp(&a.cells).then_with(|| a.file.cmp(&b.file)));
    Ok(found)
}

/// A 64-bit hash of a cell's columns, read as text (so that a dictionary of members and the table's text hash
/// alike), with a fixed seed: the same on both sides of a comparison.
fn cell_hash(columns: usize) -> ScalarUDF {
    use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
    let state = QualityRandomState::with_seed(0x6b75_6275_735f_6365);
    create_udf(
        "kubus_cell_hash",
        vec![DataType::Utf8; columns],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(move |args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let mut hashes = vec![0u64; arrays.first().map_or(0, |a| a.len())];
            create_hashes(&arrays, &state, &mut hashes)?;
            Ok(ColumnarValue::Array(Arc::new(datafusion::arrow::array::UInt64Array::from(hashes))))
        }),
    )
}

/// One side of the comparison: the cell's hash, whether each value is there, the file, and (`texts`) the cell's
/// columns as text, for the count of cells and the example.
fn side(
    facts: DataFrame,
    cells: &Cells,
    hash: &ScalarUDF,
    alias: &str,
    texts: bool,
) -> datafusion::error::Result<DataFrame> {
    let text: Vec<Expr> = cells.columns.iter().map(|c| cast(ident(c), DataType::Utf8)).collect();
    let hashed = text.iter().cloned().chain(cells.unit.iter().map(|u| cast(ident(u), DataType::Utf8))).collect();
    let mut columns = vec![hash.call(hashed).alias(CELL)];
    if texts {
        columns.extend(text.into_iter().zip(&cells.columns).map(|(t, c)| t.alias(c)));
    }
    columns.extend(cells.values.iter().map(|v| ident(v).is_not_null().alias(v)));
    columns.push(cast(ident(FILE_COLUMN), DataType::Utf8).alias(FILE_COLUMN));
    facts.select(columns)?.alias(alias)
}

/// The pairs of files of `n` and `o` that hold facts of the same cells, with how many cells and one of them.
async fn pairs(
    n: DataFrame,
    o: DataFrame,
    cells: &Cells,
    same_ingest: bool,
) -> datafusion::error::Result<Vec<Overlap>> {
    let at = |side: &str, c: &str| Expr::Column(datafusion::common::Column::new(Some(side), c));
    let mut on = vec![at("o", CELL).eq(at("n", CELL))];
    if let Some(both) = cells.values.iter().map(|v| at("n", v).and(at("o", v))).reduce(Expr::or) {
        on.push(both);
    }
    if same_ingest {
        // Each pair of files once, and never a file with itself: repeated cells within one file are its own.
        on.push(at("n", FILE_COLUMN).gt(at("o", FILE_COLUMN)));
    }
    let cell = concat_ws(
        lit(", "),
        cells.columns.iter().map(|c| datafusion::prelude::concat(vec![lit(format!("{c}=")), at("n", c)])).collect(),
    );
    // The side without texts is the one held in memory (the join's left, its build side).
    let batches = o
        .join_on(n, JoinType::Inner, on)?
        .aggregate(
            vec![at("n", FILE_COLUMN).alias("file"), at("o", FILE_COLUMN).alias("other")],
            // Cells counted by their hashes: a set of numbers, not of the cells' texts.
            vec![count_distinct(at("n", CELL)).alias("cells"), min(cell).alias("example")],
        )?
        .collect()
        .await?;
    let mut found = Vec::new();
    for batch in batches {
        let text = |i: usize| datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8);
        let (files, others, examples) = (text(0)?, text(1)?, text(3)?);
        let counts = batch.column(2).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            found.push(Overlap {
                file: files.as_string::<i32>().value(row).to_owned(),
                other: others.as_string::<i32>().value(row).to_owned(),
                same_ingest,
                cells: usize::try_from(counts.value(row)).unwrap_or(usize::MAX),
                example: match (examples.is_null(row), &cells.unit) {
                    (true, _) => String::new(),
                    (false, None) => examples.as_string::<i32>().value(row).to_owned(),
                    (false, Some(unit)) => format!("{} and one {unit} in both", examples.as_string::<i32>().value(row)),
                },
            });
        }
    }
    Ok(found)
}

impl std::fmt::Display for Overlap {
    /// `b.xlsx brings 2 cells that a.csv, already in the table, holds too (for example district=11, …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whence = if self.same_ingest { "in this ingest too" } else { "already in the table" };
        let cells = if self.cells == 1 { "cell" } else { "cells" };
        write!(f, "{} brings {} {cells} that {}, {whence}, holds too", self.file, self.cells, self.other)?;
        if !self.example.is_empty() {
            write!(f, " (for example {})", self.example)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::SessionContext;
    use std::sync::Arc;

    fn facts(ctx: &SessionContext, rows: &[(&str, &str, Option<i64>, &str)]) -> DataFrame {
        let schema = Arc::new(Schema::new(vec![
            Field::new("district", DataType::Utf8, false),
            Field::new("month", DataType::Utf8, false),
            Field::new("seats", DataType::Int64, true),
            Field::new(FILE_COLUMN, DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .unwrap();
        ctx.read_batch(batch).unwrap()
    }

    fn cells(values: &[&str]) -> Cells {
        Cells {
            columns: vec!["district".into(), "month".into()],
            unit: None,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn cells_held_twice_are_found_with_their_files_and_an_example() {
        let ctx = SessionContext::new();
        let old = [("11", "2024-01", Some(3), "a.csv"), ("12", "2024-01", Some(4), "a.csv")];
        // Two cells of a.csv again (one of them twice in b.csv, which is b.csv's own business), one new cell.
        let new = [
            ("12", "2024-01", Some(4), "b.xlsx"),
            ("12", "2024-01", Some(1), "b.xlsx"),
            ("11", "2024-01", Some(3), "b.xlsx"),
            ("13", "2024-01", Some(5), "b.xlsx"),
        ];
        let found =
            overlaps(|| Ok(facts(&ctx, &new)), Some(facts(&ctx, &old)), false, &cells(&["seats"])).await.unwrap();
        assert_eq!(
            found,
            [Overlap {
                file: "b.xlsx".into(),
                other: "a.csv".into(),
                same_ingest: false,
                cells: 2,
                example: "district=11, month=2024-01".into(),
            }]
        );
    }

    #[tokio::test]
    async fn values_of_different_columns_and_files_of_one_ingest() {
        let ctx = SessionContext::new();
        // Same cell, but the old fact has no seats: with seats the only value, nothing overlaps; counted facts do.
        let old = [("11", "2024-01", None, "a.csv")];
        let new = [("11", "2024-01", Some(2), "b.csv")];
        let (seats, counted) = (cells(&["seats"]), cells(&[]));
        let found = overlaps(|| Ok(facts(&ctx, &new)), Some(facts(&ctx, &old)), false, &seats).await.unwrap();
        assert!(found.is_empty(), "{found:?}");
        let found = overlaps(|| Ok(facts(&ctx, &new)), Some(facts(&ctx, &old)), false, &counted).await.unwrap();
        assert_eq!(found.len(), 1);
        // Two files of one ingest with a common cell: found once, as a pair; one file alone never overlaps itself.
        let two = [
            ("11", "2024-01", Some(1), "x.csv"),
            ("11", "2024-01", Some(1), "y.csv"),
            ("11", "2024-01", Some(1), "y.csv"),
        ];
        let found = overlaps(|| Ok(facts(&ctx, &two)), None, true, &cells(&["seats"])).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].file.as_str(), found[0].other.as_str(), found[0].cells), ("y.csv", "x.csv", 1));
        assert!(found[0].same_ingest);
    }
}
