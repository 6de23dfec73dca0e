//! Mutation fuzzing of the readers and the mappings (tests only): the committed sample and real exports,
//! damaged at random (bytes replaced by delimiters, quotes, line breaks, invalid UTF-8, digits; lines cut,
//! doubled or dropped), must never panic, and every file that reads must account for each of its lines. Runs
//! for a bounded time (`KUBUS_FUZZ_SECONDS`, default 5), deterministic per seed (`KUBUS_FUZZ_SEED`).

use crate::{PseudonymKey, Readers, Reading, read_file};
use kubus_model::{Model, SchemaFile, SchemaKind, load_model};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn model() -> Model {
    load_model(&schema_files()).expect("the committed schemas load")
}

/// The committed schema files.
pub(crate) fn schema_files() -> Vec<SchemaFile> {
    let mut files = Vec::new();
    for (dir, kind) in
        [("dimensions", SchemaKind::Dimension), ("cubes", SchemaKind::Cube), ("sources", SchemaKind::Source)]
    {
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(repo().join("cube-schemas").join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
            files.push(SchemaFile {
                origin: path.display().to_string(),
                text: std::fs::read_to_string(&path).unwrap(),
                kind,
            });
        }
    }
    files
}

/// A small deterministic generator (xorshift64*), so that a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn head_lines(bytes: &[u8], lines: usize) -> Vec<u8> {
    let mut end = 0;
    for _ in 0..lines {
        match bytes[end..].iter().position(|&b| b == b'\n') {
            Some(p) => end += p + 1,
            None => return bytes.to_vec(),
        }
    }
    let mut out = bytes[..end].to_vec();
    // Keep the footer of a statistics export: it is where the odd lines are.
    let tail = bytes.len().saturating_sub(300);
    out.extend_from_slice(&bytes[tail.max(end)..]);
    out
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const BYTES: &[u8] = b";,\"\n\r-. x0123456789\xff\xc3\xa4\x00\t";
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        if out.is_empty() {
            out.push(b'a');
        }
        let at = rng.below(out.len());
        match rng.below(6) {
            0 | 1 => out[at] = BYTES[rng.below(BYTES.len())],
            2 => out.insert(at, BYTES[rng.below(BYTES.len())]),
            3 => {
                let end = (at + rng.below(40)).min(out.len());
                out.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(200)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => out.truncate(at),
        }
    }
    out
}

/// The rows of damaged CSV bytes read in memory (where that reader takes them) are those of the stream: the
/// same lines, spans and cells, or the same error.
fn same_rows_in_memory(bytes: &[u8]) {
    use crate::rows::{Cell, Rows};
    type Read = Result<Vec<(usize, usize, Vec<String>)>, String>;
    let collect = |rows: Rows<'_>| -> Read {
        rows.map(|r| r.map(|r| (r.line, r.span, r.cells.iter().map(Cell::text).collect())).map_err(|e| e.to_string()))
            .collect()
    };
    for encoding in [encoding_rs::UTF_8, encoding_rs::WINDOWS_1252, encoding_rs::ISO_8859_7] {
        let Some(in_memory) = Rows::csv_in_memory(bytes, encoding, b';', "f.csv", 1) else { continue };
        let streamed = collect(Rows::csv(Box::new(bytes), encoding, b';', "f.csv", 1));
        assert_eq!(collect(in_memory), streamed, "{encoding:?}: {:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn damaged_exports_never_panic_and_account_for_every_line() {
    let model = model();
    let key = PseudonymKey::new(b"fuzz".to_vec());
    let real = repo().join("sample-data/realdata");
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        (
            "abh_newcomers",
            std::fs::read(repo().join("sample-data/auslaenderbehoerde/neuzugewanderte_2024-06.csv")).unwrap(),
        ),
        (
            "genesis_12411_0012",
            head_lines(
                &std::fs::read(real.join("destatis_genesis_12411-0012_bundeslaender_altersjahre.csv")).unwrap(),
                200,
            ),
        ),
        (
            "koeln_bevoelkerung",
            head_lines(&std::fs::read(real.join("koeln_bevoelkerung_stadtteile_2005-2012.csv")).unwrap(), 300),
        ),
        ("destatis_kreise", std::fs::read(real.join("bka_bevoelkerung_2023_kreise.xlsx")).unwrap()),
        (
            "provider_offers",
            std::fs::read(repo().join("sample-data/kurstraeger/sprachkursangebote_2023_2024.xlsx")).unwrap(),
        ),
        ("add_zuweisungen", std::fs::read(repo().join("sample-data/zuweisungen/verteilung_2024-01_2.pdf")).unwrap()),
    ];
    let seconds: u64 = std::env::var("KUBUS_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let seed: u64 = std::env::var("KUBUS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x006b_7562_7573);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut read_ok) = (0usize, 0usize);
    while Instant::now() < deadline {
        for (source, bytes) in &seeds {
            let damaged = mutate(&mut rng, bytes);
            let source = model.source(source).unwrap();
            let reading = Reading { model: &model, source, key: &key, readers: &Readers::default() };
            let outcome =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_file(reading, "fuzz.input", &damaged)));
            let Ok(result) = outcome else {
                let path = std::env::temp_dir().join(format!("kubus-fuzz-{}-{runs}", source.name()));
                std::fs::write(&path, &damaged).unwrap();
                panic!("source {} panicked on the input saved at {}", source.name(), path.display());
            };
            if matches!(source.format(), kubus_model::Format::Csv { .. }) {
                same_rows_in_memory(&damaged);
            }
            if let Ok(facts) = result {
                read_ok += 1;
                let counted = facts.accepted_lines + facts.rejected_lines + facts.skipped_lines();
                assert_eq!(counted, facts.lines, "source {}: every line is counted once ({facts:?})", source.name());
            }
            runs += 1;
        }
    }
    eprintln!("fuzz: {runs} damaged inputs, {read_ok} of them readable, no panic");
    assert!(runs >= 10 && read_ok > 0, "the fuzzer ran {runs} inputs, {read_ok} of them readable");
}

/// Numbers with their separators anywhere, in the formats sources declare, read as a grammar written here
/// independently says (a regular expression: an optional sign, whole digits either plain or grouped 1–3 then
/// exactly three after each thousands separator, an optional decimal part): a misplaced separator is no number,
/// never another one.
#[test]
fn numbers_with_misplaced_separators_are_no_numbers() {
    let mut rng = Rng(0x6e75_6d62_6572 | 1);
    for (decimal, thousands) in [('.', Some(',')), (',', Some('.')), (',', Some(' ')), ('.', None), (',', None)] {
        let t = thousands.map_or_else(String::new, |t| regex::escape(&t.to_string()));
        let grouped = if t.is_empty() { String::new() } else { format!(r"\d{{1,3}}({t}\d{{3}})+|") };
        let d = regex::escape(&decimal.to_string());
        let grammar = regex::Regex::new(&format!(r"^[+-]?({grouped}\d*)({d}\d*)?$")).unwrap();
        let alphabet: Vec<char> = "0123456789-+".chars().chain([decimal]).chain(thousands).collect();
        for _ in 0..20_000 {
            let len = 1 + rng.below(12);
            // Mostly digits, so that most texts are near-numbers with a separator or two in odd places.
            let text: String = (0..len)
                .map(|_| {
                    if rng.below(3) > 0 {
                        char::from(b'0' + rng.below(10) as u8)
                    } else {
                        alphabet[rng.below(alphabet.len())]
                    }
                })
                .collect();
            let trimmed = text.trim();
            let expected = (grammar.is_match(trimmed) && trimmed.chars().any(|c| c.is_ascii_digit()))
                .then(|| {
                    let plain: String = trimmed
                        .chars()
                        .filter(|&c| Some(c) != thousands)
                        .map(|c| if c == decimal { '.' } else { c })
                        .collect();
                    plain.parse::<f64>().ok()
                })
                .flatten();
            let read = crate::convert::parse_number(&text, decimal, thousands);
            assert_eq!(read.map(f64::to_bits), expected.map(f64::to_bits), "'{text}' with {decimal} and {thousands:?}");
        }
    }
}

/// Keys, labels and aliases made of symbols only (`------`, `-`, `*`): a value without a letter or digit
/// resolves to a member only when written exactly as one of them, never to another one by folding.
#[test]
fn values_made_of_symbols_match_only_exactly() {
    let mut files = schema_files();
    files.push(SchemaFile {
        origin: "offence.toml".into(),
        text: "name = \"offence\"\nlabel = \"Straftat\"\n[[levels]]\nname = \"offence\"\nlabel = \"Straftat\"\n\
               [[members]]\nlevel = \"offence\"\nkey = \"------\"\nlabel = \"Straftaten insgesamt\"\naliases = [\"*\"]\n\
               [[members]]\nlevel = \"offence\"\nkey = \"110\"\nlabel = \"Diebstahl\"\n"
            .into(),
        kind: SchemaKind::Dimension,
    });
    let model = load_model(&files).expect("the schemas with the offences load");
    let mut rng = Rng(0x7379_6d62 | 1);
    const SYMBOLS: &[char] = &['-', '_', '/', '.', ',', '*', ' ', '+', '–'];
    for dimension in model.dimensions() {
        for _ in 0..2_000 {
            let text: String = (0..1 + rng.below(7)).map(|_| SYMBOLS[rng.below(SYMBOLS.len())]).collect();
            if let Ok(found) = dimension.resolve(None, &text) {
                let m = dimension.member(found);
                let exact = text.trim();
                assert!(
                    m.key() == exact
                        || m.label() == exact
                        || m.label_en() == exact
                        || m.aliases().iter().any(|a| a == exact),
                    "'{text}' resolved to {} of {}",
                    m.key(),
                    dimension.name()
                );
            }
        }
    }
    let offence = model.dimension("offence").unwrap();
    for (exactly, key) in [("------", "------"), (" * ", "------"), ("110", "110")] {
        assert_eq!(offence.member(offence.resolve(None, exactly).unwrap()).key(), key);
    }
    for other in ["-", "--", "---- --", "/", "**"] {
        assert!(offence.resolve(None, other).is_err(), "'{other}'");
    }
}
