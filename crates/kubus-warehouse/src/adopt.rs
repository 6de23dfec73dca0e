//! Staged facts become files of the table: the spill files are encoded as Parquet on several threads at once,
//! moved into the table's directory when complete, and each described by a Delta `add` action with the
//! statistics its row groups already carry. Until the commit names them, the files are invisible to readers.

use crate::store::Store;
use crate::{Error, Provenance, Result};
use datafusion::arrow::array::AsArray as _;
use datafusion::arrow::datatypes::{DataType, Int32Type, SchemaRef};
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use datafusion::parquet::file::statistics::Statistics;
use datafusion::parquet::schema::types::ColumnPath;
use deltalake::protocol::{ColumnCountStat, ColumnValueStat, Stats};
use std::path::{Path, PathBuf};

/// Delta's default for the number of leading columns with statistics (`dataSkippingNumIndexedCols`).
const STATS_COLUMNS: usize = 32;

/// A staged spill file, complete, with the rows of each of its batches.
pub(crate) struct Spilled {
    pub(crate) path: PathBuf,
    pub(crate) batches: Vec<usize>,
}

/// A Parquet file written next to the spill files, to be moved into the table's directory and committed.
pub(crate) struct Written {
    name: String,
    size: u64,
    metadata: ParquetMetaData,
    /// The hash and name of each ingested file with facts in it.
    files: Vec<(String, String)>,
}

/// The tag of a file's `add` action that lists the hash and name of each ingested file with facts in it (a JSON
/// array of pairs), so that the files a table holds are read from its log ([`crate::Warehouse::ingested_files`]).
pub(crate) const FILES_TAG: &str = "kubus.files";

/// A run of consecutive batches of one spill file (one period), written in row groups of its own.
struct Unit<'a> {
    file: &'a Path,
    first: usize,
    count: usize,
}

/// Encodes the spill files (in commit order, in `schema`: [`Provenance::encoded`]) as Parquet files in `dir`,
/// named `{prefix}-{thread}.snappy.parquet`, on up to one thread per core: the batches are cut into as many
/// shares of about equal rows, each share a file, and the files keep the commit order. Within a file every period has row groups of its own, so that a
/// period cut skips the others by their statistics, and a scan opens a few files, not one per period.
pub(crate) fn encode(
    table: &str,
    spilled: &[Spilled],
    provenance: &Provenance,
    schema: &SchemaRef,
    properties: &WriterProperties,
    dir: &Path,
    prefix: &str,
) -> Result<Vec<Written>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let total: usize = spilled.iter().flat_map(|s| &s.batches).sum();
    let share = total.div_ceil(threads).max(1);
    // Runs end with their spill file and where a thread's share is full.
    let mut work: Vec<Vec<Unit<'_>>> = (0..threads).map(|_| Vec::new()).collect();
    let mut done = 0;
    for s in spilled {
        let mut first = 0;
        for (i, rows) in s.batches.iter().enumerate() {
            let thread = done / share;
            done += rows;
            let last = i + 1 == s.batches.len() || done / share != thread;
            if last {
                work[thread.min(threads - 1)].push(Unit { file: &s.path, first, count: i + 1 - first });
                first = i + 1;
            }
        }
    }
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = work
            .into_iter()
            .enumerate()
            .filter(|(_, units)| !units.is_empty())
            .map(|(i, units)| {
                scope.spawn(move || {
                    write(
                        table,
                        &units,
                        provenance,
                        schema,
                        properties,
                        dir,
                        &format!("{prefix}-{i:02}.snappy.parquet"),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect::<Vec<_>>()
    });
    results.into_iter().collect()
}

/// How the table's files are written from facts in `schema` ([`Provenance::encoded`]): as Delta writes its files
/// (Snappy, row groups of up to 1M rows), with statistics for the columns in `bounded` and the numbers only — the
/// ones a cut can skip row groups and files by (the period the facts are ordered by, the replace key), while the
/// bounds of other text columns span nearly all their members in every row group and cost two comparisons per fact
/// and column. Dictionaries (members, provenance) are written as Parquet dictionaries; text that is no dictionary
/// (person keys, free text, the cell status) is written plain: a person appears about once per period, so a
/// dictionary costs more than it saves (at 10M rows: 140.6 MB of files with it, 125.7 MB without, and less CPU).
/// The numbers in `plain` are written plain and uncompressed, without statistics (see [`plainly`]).
pub(crate) fn properties(schema: &SchemaRef, bounded: &[&str], plain: &[&str]) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by("kubus".to_owned())
        .set_statistics_enabled(EnabledStatistics::None);
    for field in schema.fields() {
        if bounded.contains(&field.name().as_str()) || field.data_type().is_numeric() {
            builder =
                builder.set_column_statistics_enabled(ColumnPath::from(field.name().as_str()), EnabledStatistics::Page);
        }
        if *field.data_type() == DataType::Utf8 {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    plainly(builder, plain).build()
}

/// Writes the columns `plain` with neither dictionary nor compression nor statistics: numbers about as many as
/// the facts (see [`crate::Staging::plain`]), which no cut bounds.
pub(crate) fn plainly(mut builder: WriterPropertiesBuilder, plain: &[&str]) -> WriterPropertiesBuilder {
    for column in plain {
        let path = ColumnPath::from(*column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_compression(path.clone(), Compression::UNCOMPRESSED)
            .set_column_statistics_enabled(path, EnabledStatistics::None);
    }
    builder
}

/// Writes runs of batches as one Parquet file, each run in row groups of its own. The spill files' file numbers
/// become the table's name and hash columns: handed to the writer as dictionaries of the ingest's files (no copy
/// of a name and a hash per fact), written as the text columns of the table's schema.
fn write(
    table: &str,
    units: &[Unit<'_>],
    provenance: &Provenance,
    schema: &SchemaRef,
    properties: &WriterProperties,
    dir: &Path,
    name: &str,
) -> Result<Written> {
    let arrow = |source| Error::Arrow { table: table.to_owned(), source };
    let parquet = |source| Error::Parquet { table: table.to_owned(), source };
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Directory { path, source }
    };
    let path = dir.join(name);
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    // Without the Arrow schema in the file's metadata, readers see the columns' Parquet types: the dictionaries
    // are text, as in the table's schema.
    let options = ArrowWriterOptions::new().with_properties(properties.clone()).with_skip_arrow_metadata(true);
    let mut writer =
        ArrowWriter::try_new_with_options(std::io::BufWriter::with_capacity(1 << 20, file), schema.clone(), options)
            .map_err(parquet)?;
    let mut present = vec![false; provenance.files()];
    for unit in units {
        let mut reader =
            FileReader::try_new(std::io::BufReader::new(std::fs::File::open(unit.file).map_err(io(unit.file))?), None)
                .map_err(arrow)?;
        reader.set_index(unit.first).map_err(arrow)?;
        // Small batches (a period's share of an ingest batch) are written some 64k rows at a time: a Parquet
        // write has a fixed cost per column.
        let (mut pending, mut rows) = (Vec::new(), 0);
        let mut batches = reader.take(unit.count).peekable();
        while let Some(batch) = batches.next() {
            let spilled = batch.map_err(arrow)?;
            let numbers = spilled.column(spilled.num_columns() - 1).as_primitive::<Int32Type>();
            for &number in numbers.values() {
                present[number as usize] = true;
            }
            rows += spilled.num_rows();
            pending.push(spilled);
            if rows >= 1 << 16 || batches.peek().is_none() {
                let spilled =
                    datafusion::arrow::compute::concat_batches(&pending[0].schema(), &std::mem::take(&mut pending))
                        .map_err(arrow)?;
                writer.write(&provenance.restore(&spilled, schema).map_err(arrow)?).map_err(parquet)?;
                rows = 0;
            }
        }
        // The run's period ends its row group.
        writer.flush().map_err(parquet)?;
    }
    let metadata = writer.close().map_err(parquet)?;
    let size = std::fs::metadata(&path).map_err(io(&path))?.len();
    let files = (0..present.len()).filter(|&i| present[i]).map(|i| provenance.file(i)).collect();
    Ok(Written { name: name.to_owned(), size, metadata, files })
}

/// Moves written files from `from` into the table's folder `table` of the warehouse: a rename each into a
/// directory warehouse (staging is on its file system), an upload each into a bucket.
pub(crate) fn move_into(written: &[Written], from: &Path, store: &Store, table: &str) -> Result<()> {
    for w in written {
        let target = format!("{table}/{}", w.name);
        store
            .upload(&from.join(&w.name), &target)
            .map_err(|source| Error::Directory { path: store.display(&target), source })?;
    }
    Ok(())
}

/// The `add` action of a written file.
pub(crate) fn add(written: &Written) -> deltalake::kernel::Action {
    deltalake::kernel::Action::Add(deltalake::kernel::Add {
        path: written.name.clone(),
        size: written.size as i64,
        partition_values: Default::default(),
        modification_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
        data_change: true,
        stats: Some(serde_json::to_string(&stats(&written.metadata)).expect("statistics serialise")),
        tags: Some(std::collections::HashMap::from([(
            FILES_TAG.to_owned(),
            Some(serde_json::to_string(&written.files).expect("pairs of text serialise")),
        )])),
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
        clustering_provider: None,
    })
}

/// The Delta statistics of a file, from the statistics its row groups carry: rows, and per column (the first
/// 32, as Delta does) the least and greatest value and the number of nulls.
fn stats(metadata: &ParquetMetaData) -> Stats {
    let mut stats = Stats { num_records: metadata.file_metadata().num_rows(), ..Default::default() };
    let columns = metadata.file_metadata().schema_descr().columns();
    for (i, column) in columns.iter().enumerate().take(STATS_COLUMNS) {
        let mut nulls = Some(0i64);
        let mut bounds: Option<(serde_json::Value, serde_json::Value)> = None;
        let mut complete = true;
        for group in metadata.row_groups() {
            let Some(s) = group.column(i).statistics() else {
                (nulls, complete) = (None, false);
                break;
            };
            nulls = nulls.zip(s.null_count_opt()).map(|(a, b)| a + b as i64);
            let group_bounds = match s {
                Statistics::Int64(v) => {
                    v.min_opt().zip(v.max_opt()).map(|(a, b)| (serde_json::json!(a), serde_json::json!(b)))
                }
                Statistics::Double(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(a, b)| (serde_json::json!(a), serde_json::json!(b))),
                Statistics::ByteArray(v) => v.min_opt().zip(v.max_opt()).and_then(|(a, b)| {
                    Some((serde_json::json!(a.as_utf8().ok()?), serde_json::json!(b.as_utf8().ok()?)))
                }),
                _ => None,
            };
            match group_bounds {
                Some((low, high)) => {
                    bounds = Some(match bounds {
                        None => (low, high),
                        Some((l, h)) => (if less(&low, &l) { low } else { l }, if less(&h, &high) { high } else { h }),
                    })
                }
                // A row group of nulls only has no bounds and changes none; otherwise they are unknown.
                None if s.null_count_opt() == Some(group.num_rows() as u64) => {}
                None => complete = false,
            }
        }
        let name = column.name();
        if let Some(n) = nulls {
            stats.null_count.insert(name.to_owned(), ColumnCountStat::Value(n));
        }
        if let (true, Some((low, high))) = (complete, bounds) {
            stats.min_values.insert(name.to_owned(), ColumnValueStat::Value(low));
            stats.max_values.insert(name.to_owned(), ColumnValueStat::Value(high));
        }
    }
    stats
}

/// Orders two bounds of one column (both whole numbers, both numbers, or both texts).
fn less(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a, b) {
        (serde_json::Value::String(a), serde_json::Value::String(b)) => a < b,
        _ => match (a.as_i64(), b.as_i64()) {
            (Some(a), Some(b)) => a < b,
            _ => a.as_f64().unwrap_or(f64::NAN) < b.as_f64().unwrap_or(f64::NAN),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    fn table_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("month", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
            Field::new("_ingest_file", DataType::Utf8, false),
            Field::new("_ingest_hash", DataType::Utf8, false),
        ]))
    }

    /// The spill files' schema: the period a dictionary, as ingest makes it, the provenance a file number.
    fn spill_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("month", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new("n", DataType::Int64, true),
            Field::new("_ingest_file", DataType::Int32, false),
        ]))
    }

    /// Spill files as staging writes them (here the facts of two files, by batch).
    fn spill(dir: &Path, name: &str, month: &str, batches: &[std::ops::Range<i64>]) -> Spilled {
        let schema = spill_schema();
        let months: ArrayRef = Arc::new(StringArray::from(vec!["2023-12", "2024-01", "2024-02", "2024-03"]));
        let key = (0..months.len())
            .find(|&i| months.as_any().downcast_ref::<StringArray>().unwrap().value(i) == month)
            .unwrap() as i32;
        let path = dir.join(name);
        let mut writer =
            datafusion::arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(&path).unwrap(), &schema)
                .unwrap();
        for range in batches {
            let rows = range.clone().count();
            let n: Int64Array = range.clone().map(|v| (v % 7 != 0).then_some(v)).collect();
            let file = Int32Array::from(vec![(range.start % 2) as i32; rows]);
            let month = DictionaryArray::new(Int32Array::from(vec![key; rows]), months.clone());
            let columns: Vec<ArrayRef> = vec![Arc::new(month), Arc::new(n), Arc::new(file)];
            writer.write(&RecordBatch::try_new(schema.clone(), columns).unwrap()).unwrap();
        }
        writer.finish().unwrap();
        Spilled { path, batches: batches.iter().map(|r| r.clone().count()).collect() }
    }

    #[test]
    fn staged_files_are_encoded_in_commit_order_with_their_statistics() {
        let dir = tempfile::tempdir().unwrap();
        // Uneven periods, so that the cut between threads falls inside one of them.
        let spilled = vec![
            spill(dir.path(), "0.arrow", "2024-01", &[0..10, 10..25]),
            spill(dir.path(), "1.arrow", "2024-02", &[25..30, 30..70, 70..71, 71..90]),
            spill(dir.path(), "2.arrow", "2024-03", &[90..95, 95..100]),
        ];
        let out = dir.path().join("table");
        std::fs::create_dir(&out).unwrap();
        let provenance =
            Provenance { names: vec!["a.csv".into(), "b.csv".into()], hashes: vec!["ha".into(), "hb".into()] };
        let properties = properties(&table_schema(), &["month"], &[]);
        let written =
            encode("t", &spilled, &provenance, &Provenance::encoded(&spill_schema()), &properties, &out, "part-1")
                .unwrap();
        let mut values = Vec::new();
        for w in &written {
            let file = std::fs::File::open(out.join(&w.name)).unwrap();
            let mut months = std::collections::BTreeSet::new();
            for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
                let batch = batch.unwrap();
                assert_eq!(batch.schema(), table_schema(), "provenance is text in the table");
                let month = batch.column(0).as_any().downcast_ref::<StringArray>().unwrap();
                let n = batch.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
                let file = batch.column(2).as_any().downcast_ref::<StringArray>().unwrap();
                let hash = batch.column(3).as_any().downcast_ref::<StringArray>().unwrap();
                months.extend(month.iter().flatten().map(str::to_owned));
                values.extend((0..batch.num_rows()).map(|i| {
                    (
                        month.value(i).to_owned(),
                        n.is_valid(i).then(|| n.value(i)),
                        format!("{} {}", file.value(i), hash.value(i)),
                    )
                }));
            }
            // Every row group of one period (its statistics' bounds equal), as many as the file's periods.
            let groups: Vec<(String, String)> = w
                .metadata
                .row_groups()
                .iter()
                .map(|g| match g.column(0).statistics() {
                    Some(Statistics::ByteArray(v)) => (
                        v.min_opt().unwrap().as_utf8().unwrap().to_owned(),
                        v.max_opt().unwrap().as_utf8().unwrap().to_owned(),
                    ),
                    other => panic!("no text statistics: {other:?}"),
                })
                .collect();
            assert!(groups.iter().all(|(low, high)| low == high), "{groups:?}");
            assert_eq!(
                groups.iter().map(|(m, _)| m.clone()).collect::<std::collections::BTreeSet<_>>(),
                months,
                "{groups:?}"
            );
            // Statistics against the file's own rows.
            let stats = stats(&w.metadata);
            let rows: Vec<i64> =
                values.iter().rev().take(stats.num_records as usize).filter_map(|(_, n, _)| *n).collect();
            assert_eq!(stats.min_values["n"], ColumnValueStat::Value(serde_json::json!(rows.iter().min().unwrap())));
            assert_eq!(stats.max_values["n"], ColumnValueStat::Value(serde_json::json!(rows.iter().max().unwrap())));
            assert_eq!(stats.null_count["n"], ColumnCountStat::Value(stats.num_records - rows.len() as i64));
            assert_eq!(stats.min_values["month"], ColumnValueStat::Value(serde_json::json!(months.first().unwrap())));
            // Text columns that bound nothing are written without statistics.
            assert!(
                !stats.min_values.contains_key("_ingest_hash") && !stats.null_count.contains_key("_ingest_file"),
                "{stats:?}"
            );
        }
        // Every staged row once, in the order staged, whatever thread wrote it, with its file's name and hash.
        let batches = [0..10, 10..25, 25..30, 30..70, 70..71, 71..90, 90..95, 95..100];
        let expected: Vec<(String, Option<i64>, String)> = batches
            .iter()
            .flat_map(|r| r.clone().map(move |v| (v, r.start % 2 == 0)))
            .map(|(v, even)| {
                let month = if v < 25 {
                    "2024-01"
                } else if v < 90 {
                    "2024-02"
                } else {
                    "2024-03"
                };
                (month.to_owned(), (v % 7 != 0).then_some(v), if even { "a.csv ha" } else { "b.csv hb" }.to_owned())
            })
            .collect();
        assert_eq!(values, expected);
    }

    #[test]
    fn statistics_and_dictionaries_where_they_pay() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("month", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new("district", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), false),
            Field::new("person", DataType::Utf8, true),
            Field::new("hours", DataType::Float64, true),
            Field::new("key", DataType::Int32, true),
        ]));
        let properties = properties(&schema, &["month"], &["key"]);
        let column = |name: &str| ColumnPath::from(name);
        let all = ["month", "district", "person", "hours", "key"];
        let stats: Vec<bool> =
            all.iter().map(|c| properties.statistics_enabled(&column(c)) != EnabledStatistics::None).collect();
        assert_eq!(stats, [true, false, false, true, false]);
        let dictionaries: Vec<bool> = all.iter().map(|c| properties.dictionary_enabled(&column(c))).collect();
        assert_eq!(dictionaries, [true, true, false, true, false]);
        let compressed: Vec<bool> =
            all.iter().map(|c| properties.compression(&column(c)) != Compression::UNCOMPRESSED).collect();
        assert_eq!(compressed, [true, true, true, true, false]);
    }

    #[test]
    fn bounds_of_several_row_groups_are_combined() {
        let schema = table_schema();
        let mut buffer = Vec::new();
        let properties = WriterProperties::builder().set_max_row_group_row_count(Some(3)).build();
        let mut writer = ArrowWriter::try_new(&mut buffer, schema.clone(), Some(properties)).unwrap();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["b", "a", "c", "d", "e", "f", "g"])),
            Arc::new(Int64Array::from(vec![Some(5), None, Some(-2), None, None, None, Some(40)])),
            Arc::new(StringArray::from(vec!["x"; 7])),
            Arc::new(StringArray::from(vec!["h"; 7])),
        ];
        writer.write(&RecordBatch::try_new(schema, columns).unwrap()).unwrap();
        let metadata = writer.close().unwrap();
        assert_eq!(metadata.row_groups().len(), 3);
        let stats = stats(&metadata);
        assert_eq!(stats.num_records, 7);
        assert_eq!(stats.min_values["n"], ColumnValueStat::Value(serde_json::json!(-2)));
        assert_eq!(stats.max_values["n"], ColumnValueStat::Value(serde_json::json!(40)));
        assert_eq!(stats.null_count["n"], ColumnCountStat::Value(4));
        assert_eq!(stats.min_values["month"], ColumnValueStat::Value(serde_json::json!("a")));
        assert_eq!(stats.max_values["month"], ColumnValueStat::Value(serde_json::json!("g")));
    }
}
