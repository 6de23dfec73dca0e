//! Ingest orchestration: reads the files, skips those already in the warehouse (by SHA-256), converts the rest,
//! replaces their quarantine lines, and appends all accepted facts in one atomic commit. The quarantine is
//! written before the commit, so a crash in between leaves a file that is simply ingested again next time.

use crate::{Error, KeyOrigin, Project, Result};
use kubus_warehouse::QuarantineRow;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Read and converted: its accepted facts are in this ingest's commit.
    Ingested(FileCounts),
    /// The warehouse already holds this exact file (same SHA-256); nothing was changed.
    AlreadyIngested,
}

/// How the lines of one converted file were accounted for: `lines = accepted + rejected + Σ skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Physical lines (CSV) or sheet rows.
    pub lines: usize,
    /// Lines that became facts.
    pub accepted: usize,
    /// Lines sent to quarantine.
    pub rejected: usize,
    /// Lines skipped on purpose, by reason (title, header, total (checked), footer, empty line, …).
    pub skipped: kubus_ingest::Skipped,
    /// Facts produced (a wide line gives one fact per unpivoted cell).
    pub facts: usize,
    /// Totals in the file compared with the sums of its detail facts.
    pub totals_compared: usize,
    /// The file's total lines by how they matched (exactly, within the source's tolerance, not at all).
    pub total_lines: kubus_ingest::TotalLines,
    /// Checks that failed without rejecting a line.
    pub warnings: Vec<String>,
    /// Encoding (or workbook format) it was read with.
    pub encoding: String,
    /// A dry run read a file the warehouse already holds (same SHA-256): an ingest would skip it.
    pub already_ingested: bool,
}

impl FileCounts {
    /// Lines skipped for any reason.
    pub fn skipped_lines(&self) -> usize {
        self.skipped.lines()
    }

    fn add(&mut self, other: &FileCounts) {
        self.lines += other.lines;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.facts += other.facts;
        self.totals_compared += other.totals_compared;
        self.total_lines.add(other.total_lines);
        self.skipped.absorb(&other.skipped);
        self.warnings.extend(other.warnings.iter().cloned());
    }
}

/// One input file's report.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The path given.
    pub path: PathBuf,
    /// SHA-256 of its bytes, followed by the values given to it (`--set`) if any, hex: its ingest hash.
    pub sha256: String,
    /// What happened.
    pub outcome: FileOutcome,
}

/// The report of one ingest.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Source name.
    pub source: String,
    /// Cube fed.
    pub cube: String,
    /// Per-file reports, in input order.
    pub files: Vec<FileReport>,
    /// The cube's version after the ingest (`None` if it has no facts at all).
    pub version: Option<u64>,
    /// The quarantine file, when any file was converted.
    pub quarantine: Option<PathBuf>,
    /// Every rejected line of this ingest.
    pub rejected: Vec<QuarantineRow>,
    /// Where the pseudonymisation key came from, if the source needed one.
    pub key_origin: Option<KeyOrigin>,
    replace_key: Vec<String>,
    /// Facts of earlier files that this ingest replaced (same replace key); of a dry run, that it would replace.
    pub replaced: Vec<kubus_warehouse::Replaced>,
    /// A dry run: nothing was committed and the quarantine was not touched.
    pub dry_run: bool,
    /// Of a dry run: why the ingest would be refused at its commit (the same data twice), if it would.
    pub refusal: Option<String>,
    /// The first facts of a dry run (at most [`IngestOptions::preview`] rows), in the fact table's schema.
    pub preview: Option<datafusion::arrow::record_batch::RecordBatch>,
    /// The cube's rollups, rebuilt for the new version after the commit.
    pub rollups: Vec<kubus_warehouse::StoredRollup>,
    /// Why the rollups could not be built (the facts are committed; queries read them until
    /// `kubus rollups build` succeeds).
    pub rollup_problem: Option<String>,
    /// The rollups of earlier versions removed after the new version's were stored (`[rollups] keep_versions`),
    /// or why they could not be.
    pub pruned: std::result::Result<kubus_warehouse::Pruned, String>,
}

/// What an ingest reports while it works.
#[derive(Debug)]
pub enum IngestProgress<'a> {
    /// A file is being read: lines and bytes so far, and its size.
    Reading {
        /// The file.
        path: &'a Path,
        /// Lines read so far.
        lines: usize,
        /// Bytes read so far (0 for workbooks, which are read whole).
        bytes: u64,
        /// The file's size in bytes.
        size: u64,
    },
    /// A file is done.
    Done(&'a FileReport),
}

/// How to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// Read and convert everything, report it, but commit nothing and leave the quarantine as it is.
    pub dry_run: bool,
    /// Use the project's demo key when no real key is set (synthetic sample data only; announced on every use).
    pub demo_key: bool,
    /// Number of facts a dry run shows.
    pub preview: usize,
    /// Who ingests, for the audit log.
    pub role: Option<String>,
    /// Values for the source's fields that read `@set` (what the file does not hold): `--set year=2023`.
    pub given: std::collections::BTreeMap<String, String>,
}

impl IngestReport {
    /// The source's replace key (empty when facts are appended).
    pub fn replace_key(&self) -> &[String] {
        &self.replace_key
    }

    /// Counts summed over the converted files (the encoding is left empty).
    pub fn totals(&self) -> FileCounts {
        let mut sum = FileCounts::default();
        for f in &self.files {
            if let FileOutcome::Ingested(counts) = &f.outcome {
                sum.add(counts);
            }
        }
        sum
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

impl Project {
    /// Expands directories (all regular files inside, sorted) and keeps files as given.
    pub fn expand_inputs(&self, inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for input in inputs {
            let path = if input.is_absolute() || input.exists() { input.clone() } else { self.root().join(input) };
            if path.is_dir() {
                let read =
                    std::fs::read_dir(&path).map_err(|source| Error::InputFile { path: path.clone(), source })?;
                let mut files: Vec<PathBuf> =
                    read.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
                files.sort();
                out.extend(files);
            } else {
                out.push(path);
            }
        }
        Ok(out)
    }

    /// Ingests `files` through `source` in one commit. `progress` is called after each file.
    pub async fn ingest(
        &self,
        source: &str,
        files: &[PathBuf],
        progress: &mut dyn FnMut(&FileReport),
    ) -> Result<IngestReport> {
        self.ingest_with(source, files, IngestOptions::default(), &mut |p| {
            if let IngestProgress::Done(report) = p {
                progress(report)
            }
        })
        .await
    }

    /// Ingests, or with `options.dry_run` only shows what an ingest would do.
    pub async fn ingest_with(
        &self,
        source: &str,
        files: &[PathBuf],
        options: IngestOptions,
        progress: &mut dyn FnMut(IngestProgress<'_>),
    ) -> Result<IngestReport> {
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into_owned()))
            .collect();
        let mut entry = serde_json::json!({"kind": "ingest", "role": options.role, "source": source, "files": names, "dry_run": options.dry_run});
        let outcome = self.ingest_files(source, files, options, progress).await;
        crate::access::outcome(&mut entry, &outcome);
        if let Ok(report) = &outcome {
            entry["version"] = report.version.into();
            entry["rejected"] = report.rejected.len().into();
        }
        self.audit().append(entry)?;
        outcome
    }

    async fn ingest_files(
        &self,
        source: &str,
        files: &[PathBuf],
        options: IngestOptions,
        progress: &mut dyn FnMut(IngestProgress<'_>),
    ) -> Result<IngestReport> {
        let model = self.model();
        let source = &model.source(source)?.given(&options.given).map_err(Error::Given)?;
        let cube = source.cube().to_owned();
        let needs_key = source.fields().iter().any(|f| matches!(f.kind(), kubus_model::FieldKind::Pseudonym(_)));
        let (key, key_origin) = if needs_key {
            let (key, origin) = self.pseudonym_key(options.demo_key)?;
            (key, Some(origin))
        } else {
            (kubus_ingest::PseudonymKey::new(Vec::new()), None)
        };
        // An ingest holds the cube's lock from reading which files the table holds to its commit: another ingest
        // of the cube (an upload, the CLI) waits for it and then sees its files. A dry run holds it too, as it
        // stages the facts to check them against the table as the commit would.
        let lock = self.lock_cube(&cube).await?;
        // A file the warehouse holds is known by its SHA-256, and where the source reads the file's name (`@file`),
        // by its name too: the same bytes under another name are other facts.
        let by_name = source
            .fields()
            .iter()
            .any(|f| f.inputs().iter().any(|i| i.leaves().contains(&&kubus_model::Input::FileName)));
        let identity =
            move |sha256: &str, name: &str| if by_name { format!("{sha256} {name}") } else { sha256.to_owned() };
        let mut known: BTreeSet<String> =
            self.warehouse().ingested_files(&cube).await?.into_iter().map(|(h, f)| identity(&h, &f)).collect();
        // A dry run reads a file the warehouse holds as well, to show it, and says that an ingest would skip it.
        let held = if options.dry_run { std::mem::take(&mut known) } else { BTreeSet::new() };

        let mut schema = kubus_ingest::fact_schema(model.cube(&cube)?);
        // A table written before facts stored their record keys gets none: its older facts have none either, and
        // queries compute every key from the unit where the table has no column for them.
        let keyless = match self.warehouse().facts(&datafusion::prelude::SessionContext::new(), &cube, None).await? {
            Some((table, _)) => table.schema().index_of(kubus_model::RECORD_KEY_COLUMN).is_err(),
            None => false,
        };
        let record_key = schema.index_of(kubus_model::RECORD_KEY_COLUMN).ok().filter(|_| keyless);
        if let Some(at) = record_key {
            schema = std::sync::Arc::new(
                schema.project(&without(schema.fields().len(), at)).expect("a column of the schema"),
            );
        }
        // The facts are staged on a thread of their own (ordering them by period and spilling them), while this
        // one reads and converts. A dry run also keeps the first facts to show, and stages none of a file the
        // warehouse holds (an ingest would skip it).
        let staging = self
            .warehouse()
            .stage(
                &lock,
                schema,
                source.replace_key(),
                model.cube(&cube)?.time_role().map(|r| r.name()),
                (!source.adds_overlaps()).then(|| cells(model.cube(&cube).expect("the source's cube"))),
            )?
            .plain(&[kubus_model::RECORD_KEY_COLUMN]);
        let mut preview: Option<datafusion::arrow::record_batch::RecordBatch> = None;
        let given = given_values(&options.given);
        let (staging, (reports, rejected, converted_names)) = std::thread::scope(|scope| -> Result<_> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Staged>(STAGED_IN_FLIGHT);
            let mut staging = staging;
            let stager = scope.spawn(move || -> Result<kubus_warehouse::Staging> {
                for staged in rx {
                    match staged {
                        Staged::Facts { file, sha256, batch } => staging.add(&file, &sha256, &batch)?,
                        Staged::Done { file, sha256, facts } => staging.log_file(&file, &sha256, facts),
                    }
                }
                Ok(staging)
            });
            let known = (&mut known, &identity as &dyn Fn(&str, &str) -> String, given.as_slice());
            let read = self.read_files(model, source, files, &key, known, progress, &mut |staged| {
                let staged = match (staged, record_key) {
                    (Staged::Facts { file, sha256, batch }, Some(at)) => {
                        let batch =
                            batch.project(&without(batch.num_columns(), at)).expect("the facts have their record keys");
                        Staged::Facts { file, sha256, batch }
                    }
                    (staged, _) => staged,
                };
                if options.dry_run {
                    if let (Staged::Facts { batch, .. }, None) = (&staged, &preview) {
                        preview = Some(as_text(&batch.slice(0, options.preview.min(batch.num_rows()))));
                    }
                    let (Staged::Facts { file, sha256, .. } | Staged::Done { file, sha256, .. }) = &staged;
                    if held.contains(&identity(sha256, file)) {
                        return true;
                    }
                }
                // A closed channel means the stager stopped on an error, which its join reports.
                tx.send(staged).is_ok()
            });
            drop(tx);
            // The stager's error first: when it stopped, reading stopped because of it.
            let staged = stager.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok((staged, read?))
        })?;
        if options.dry_run {
            let mut reports = reports;
            for report in &mut reports {
                if let FileOutcome::Ingested(counts) = &mut report.outcome {
                    counts.already_ingested = held.contains(&identity(&report.sha256, &file_name(&report.path)));
                }
            }
            // What the commit would say, without committing.
            let (version, replaced, refusal) = match self.warehouse().check(staging).await {
                Ok(commit) => (commit.version, commit.replaced, None),
                Err(e @ kubus_warehouse::Error::Overlap { .. }) => {
                    (self.warehouse().version(&cube).await?, Vec::new(), Some(e.to_string()))
                }
                Err(e) => return Err(e.into()),
            };
            return Ok(IngestReport {
                source: source.name().to_owned(),
                cube,
                files: reports,
                version,
                quarantine: None,
                rejected,
                key_origin,
                replace_key: source.replace_key().to_vec(),
                replaced,
                dry_run: true,
                refusal,
                preview,
                rollups: Vec::new(),
                rollup_problem: None,
                pruned: Ok(Default::default()),
            });
        }
        let quarantine = if converted_names.is_empty() {
            None
        } else {
            Some(self.warehouse().write_quarantine(source.name(), &converted_names, &rejected)?)
        };
        let commit = self.warehouse().commit(staging).await?;
        // A file whose facts were all replaced has nothing left to fix: its quarantine lines go too, whichever of
        // the cube's sources brought it. A file of this ingest by the same name keeps the lines just written.
        let whole: BTreeSet<String> = commit.replaced.iter().filter(|r| r.whole_file).map(|r| r.file.clone()).collect();
        for other in model.sources().filter(|s| s.cube() == cube && !whole.is_empty()) {
            let gone: BTreeSet<String> = if other.name() == source.name() {
                whole.difference(&converted_names).cloned().collect()
            } else {
                whole.clone()
            };
            if !gone.is_empty() && !self.warehouse().read_quarantine(other.name())?.is_empty() {
                self.warehouse().write_quarantine(other.name(), &gone, &[])?;
            }
        }
        let version = commit.version;
        let (rollups, rollup_problem) = match self.build_rollups(&cube).await {
            Ok(built) => (built, None),
            Err(e) => (Vec::new(), Some(crate::error_chain(&e))),
        };
        // Only once the new version's rollups are stored: an earlier version's are what they are merged from.
        let pruned = match rollup_problem {
            Some(_) => Ok(Default::default()),
            None => self.prune_rollups(&cube).map_err(|e| crate::error_chain(&e)),
        };
        Ok(IngestReport {
            source: source.name().to_owned(),
            cube,
            files: reports,
            version,
            quarantine,
            rejected,
            key_origin,
            replace_key: source.replace_key().to_vec(),
            replaced: commit.replaced,
            dry_run: false,
            refusal: None,
            preview: None,
            rollups,
            rollup_problem,
            pruned,
        })
    }

    /// Waits for the cube's ingest lock (another ingest of the cube, here or in another process, holds it until
    /// its commit), checking every 50 ms without blocking the runtime.
    async fn lock_cube(&self, cube: &str) -> Result<kubus_warehouse::CubeLock> {
        loop {
            if let Some(lock) = self.warehouse().try_lock(cube)? {
                return Ok(lock);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Reads `files` in order: skips those already in the warehouse (by SHA-256), converts the others and hands
    /// their facts to `stage` (which answers `false` when it can take no more). Returns the files' reports, the
    /// rejected lines and the names of the converted files.
    #[allow(clippy::too_many_arguments)]
    fn read_files(
        &self,
        model: &kubus_model::Model,
        source: &kubus_model::Source,
        files: &[PathBuf],
        key: &kubus_ingest::PseudonymKey,
        (known, identity, given): Known<'_>,
        progress: &mut dyn FnMut(IngestProgress<'_>),
        stage: &mut dyn FnMut(Staged) -> bool,
    ) -> Result<(Vec<FileReport>, Vec<QuarantineRow>, BTreeSet<String>)> {
        let (mut reports, mut rejected, mut converted_names) = (Vec::new(), Vec::new(), BTreeSet::new());
        for path in files {
            let name = file_name(path);
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            let (sha256, facts) = read_unless_known(
                path,
                given,
                &|sha256| known.contains(&identity(sha256, &name)),
                &mut |input, sink| {
                    let progress = &mut |p: kubus_ingest::Progress| {
                        progress(IngestProgress::Reading { path, lines: p.lines, bytes: p.bytes, size })
                    };
                    let reading = kubus_ingest::Reading { model, source, key, readers: &self.readers };
                    kubus_ingest::read_file_to(reading, &name, input, progress, sink)
                },
                &mut |sha256, batch| stage(Staged::Facts { file: name.clone(), sha256: sha256.to_owned(), batch }),
            )?;
            let outcome = match facts {
                None => FileOutcome::AlreadyIngested,
                Some(facts) => {
                    stage(Staged::Done { file: name.clone(), sha256: sha256.clone(), facts: facts.facts });
                    known.insert(identity(&sha256, &name));
                    converted_names.insert(name.clone());
                    let outcome = FileOutcome::Ingested(FileCounts {
                        lines: facts.lines,
                        accepted: facts.accepted_lines,
                        rejected: facts.rejected_lines,
                        skipped: facts.skipped.clone(),
                        facts: facts.facts,
                        totals_compared: facts.totals_compared,
                        total_lines: facts.total_lines,
                        warnings: facts.warnings.clone(),
                        encoding: facts.encoding.clone(),
                        already_ingested: false,
                    });
                    rejected.extend(facts.rejected.into_iter().map(|r| QuarantineRow {
                        file: r.file,
                        line: r.line,
                        column: r.column,
                        value: r.value,
                        problem: r.problem.name().to_owned(),
                        reason: r.reason,
                    }));
                    outcome
                }
            };
            let report = FileReport { path: path.clone(), sha256, outcome };
            progress(IngestProgress::Done(&report));
            reports.push(report);
        }
        Ok((reports, rejected, converted_names))
    }
}

/// What makes two facts of `cube` the same data: their members of every role and their unit (the person), if
/// the cube has one; and, unless the cube counts its facts, the value columns its measures aggregate.
fn cells(cube: &kubus_model::Cube) -> kubus_warehouse::Cells {
    use kubus_model::MeasureKind;
    let columns: Vec<String> = cube.dimensions().iter().map(|d| d.name().to_owned()).collect();
    let unit = cube.unit_column().map(str::to_owned);
    let aggregated: Vec<Option<&str>> = cube
        .measures()
        .iter()
        .filter_map(|m| match m.kind() {
            MeasureKind::Aggregate { column, .. } => Some(column.as_deref()),
            _ => None,
        })
        .collect();
    let values = if aggregated.contains(&None) {
        Vec::new()
    } else {
        let mut values: Vec<String> = aggregated.into_iter().flatten().map(str::to_owned).collect();
        values.sort();
        values.dedup();
        values
    };
    kubus_warehouse::Cells { columns, unit, values }
}

/// The column numbers `0..columns` without `at`.
fn without(columns: usize, at: usize) -> Vec<usize> {
    (0..columns).filter(|&c| c != at).collect()
}

/// Facts as the table holds them: members as text, not as numbers of the dimension's dictionary.
fn as_text(facts: &datafusion::arrow::record_batch::RecordBatch) -> datafusion::arrow::record_batch::RecordBatch {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in facts.schema().fields().iter().zip(facts.columns()) {
        match field.data_type() {
            DataType::Dictionary(_, value) => {
                fields.push(Field::new(field.name(), value.as_ref().clone(), field.is_nullable()));
                columns.push(
                    datafusion::arrow::compute::cast(column, value).expect("a dictionary casts to its values' type"),
                );
            }
            _ => {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    datafusion::arrow::record_batch::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .expect("the same columns, cast")
}

/// The batches of one file's facts as they are read.
type Sink<'s> = &'s mut dyn FnMut(datafusion::arrow::record_batch::RecordBatch) -> kubus_ingest::Result<()>;

/// Reads one file's bytes into facts, handing them to a sink.
type ReadFile<'r> =
    &'r mut dyn FnMut(Box<dyn std::io::Read + '_>, Sink<'_>) -> kubus_ingest::Result<kubus_ingest::FileFacts>;

/// Batches of a file's facts held back at most while its hash is computed.
const HELD_BATCHES: usize = 8;

/// Reads a file with `read` unless the warehouse already holds it (`known`), and returns its SHA-256 (of its bytes
/// followed by `given`) and its facts (`None`: already ingested). The hash is computed on a thread of its own while the file is read, not in a pass
/// before it, which would leave the other cores idle; until it is known the facts are held back (at most
/// [`HELD_BATCHES`], then reading waits for it), then handed to `stage` with it. A file already ingested stops as
/// soon as its hash is known.
fn read_unless_known(
    path: &Path,
    given: &[u8],
    known: &dyn Fn(&str) -> bool,
    read: ReadFile<'_>,
    stage: &mut dyn FnMut(&str, datafusion::arrow::record_batch::RecordBatch) -> bool,
) -> Result<(String, Option<kubus_ingest::FileFacts>)> {
    let input_error = |source| Error::InputFile { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(input_error)?;
    let stopped = |why: &str| kubus_ingest::Error::Sink { file: file_name(path), source: why.into() };
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            let hash = std::fs::File::open(path).and_then(|file| {
                let mut hasher = Sha256::new();
                std::io::copy(&mut std::io::BufReader::new(file), &mut hasher)?;
                hasher.update(given);
                Ok(hex::encode(hasher.finalize()))
            });
            let _ = tx.send(hash);
        });
        let wait = |rx: &std::sync::mpsc::Receiver<std::io::Result<String>>| {
            rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("hashing stopped")))
        };
        let mut hash: Option<std::io::Result<String>> = None;
        let mut held = Vec::new();
        let facts = read(Box::new(std::io::BufReader::with_capacity(1 << 16, file)), &mut |batch| {
            if hash.is_none() {
                match rx.try_recv() {
                    Ok(h) => hash = Some(h),
                    Err(_) if held.len() < HELD_BATCHES => {
                        held.push(batch);
                        return Ok(());
                    }
                    Err(_) => hash = Some(wait(&rx)),
                }
            }
            match &hash {
                Some(Ok(h)) if !known(h) => {
                    for batch in held.drain(..).chain([batch]) {
                        if !stage(h, batch) {
                            return Err(stopped("staging failed"));
                        }
                    }
                    Ok(())
                }
                // Already ingested, or the hash failed: no need to read on.
                _ => Err(stopped("stopped")),
            }
        });
        let sha256 = hash.unwrap_or_else(|| wait(&rx)).map_err(input_error)?;
        if known(&sha256) {
            return Ok((sha256, None));
        }
        let facts = facts?;
        for batch in held {
            if !stage(&sha256, batch) {
                return Err(stopped("staging failed").into());
            }
        }
        Ok((sha256, Some(facts)))
    })
}

/// The files the warehouse holds, by identity, and how a file's identity follows from its SHA-256 and name.
/// The files the warehouse holds, how a file is known among them (its hash, and its name where the source reads
/// it), and what the hash covers besides the files' bytes (see [`given_values`]).
type Known<'k> = (&'k mut BTreeSet<String>, &'k dyn Fn(&str, &str) -> String, &'k [u8]);

/// What a file's ingest hash covers after its bytes: the values given to it (`--set`), so that the same bytes
/// with another value (a list of the year 2023 that reads like the one of 2024) are another delivery, not one
/// already ingested. Without given values, nothing: the hash is the file's SHA-256.
fn given_values(given: &std::collections::BTreeMap<String, String>) -> Vec<u8> {
    given.iter().flat_map(|(field, value)| format!("\0--set {field}={value}").into_bytes()).collect()
}

/// Batches of facts in flight between reading and staging.
const STAGED_IN_FLIGHT: usize = 4;

/// What reading hands to staging: a file's facts, batch by batch, then the file's entry for the commit's log.
enum Staged {
    Facts { file: String, sha256: String, batch: datafusion::arrow::record_batch::RecordBatch },
    Done { file: String, sha256: String, facts: usize },
}
