//! Benchmark support: a deterministic generator of exports in the foreigners' authority's format, and a scratch
//! project with the repository's schemas. Used by the benchmark binaries, never by tests.

use std::io::Write;
use std::path::{Path, PathBuf};

const DISTRICTS: [&str; 18] = [
    "Innenstadt Ost",
    "Innenstadt-Südwest",
    "Kotten",
    "Kaiserberg",
    "Grübentälchen",
    "Betzenberg",
    "Uniwohnstadt",
    "Bännjerrück",
    "KL-West",
    "Erzhütten",
    "Einsiedlerhof",
    "Morlautern",
    "Erlenbach",
    "Mölschbach",
    "Dansenberg",
    "Hohenecken",
    "Siegelbach",
    "Erfenbach",
];
const NATIONS: [&str; 6] = ["Syrien", "Ukraine", "Afghanistan", "Türkei", "Rumänien", "Irak"];
const STATUS: [&str; 4] = ["Aufenthaltsgestattung", "§ 24", "Duldung", "EU-Freizügigkeit"];
const LEVELS: [&str; 6] = ["", "A1", "A2", "B1", "B2", "C1"];

/// A small deterministic generator (SplitMix64), so every run benchmarks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Writes `rows` data lines of a monthly newcomers export (Windows-1252, `;`, CRLF) to `path`.
pub fn write_export(path: &Path, rows: usize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut line = String::from(
        "Personennummer;Familienname;Vorname;Geburtsdatum;Geschlecht;Staatsangehörigkeit;Straße;Hausnummer;Stadtteil;Aufenthaltsstatus;Sprachniveau;Kursteilnahme;Kursträger;Kursstunden;Stichtag\r\n",
    );
    let mut rng = Rng(42);
    for i in 0..rows {
        let in_course = rng.next(10) < 3;
        line.push_str(&format!(
            "B-{i:08};Name{};Vorname{};{:02}.{:02}.{};{};{};Straße {};{};{};{};{};{};{};{};30.06.2024\r\n",
            rng.next(500),
            rng.next(500),
            1 + rng.next(28),
            1 + rng.next(12),
            1950 + rng.next(74),
            ["männlich", "weiblich"][rng.next(2) as usize],
            NATIONS[rng.next(6) as usize],
            rng.next(90),
            1 + rng.next(120),
            DISTRICTS[rng.next(18) as usize],
            STATUS[rng.next(4) as usize],
            LEVELS[rng.next(6) as usize],
            if in_course { "ja" } else { "nein" },
            if in_course { "VHS" } else { "" },
            if in_course { format!("{},5", rng.next(100)) } else { String::new() },
        ));
        if line.len() > 1 << 20 {
            out.write_all(&encode(&line))?;
            line.clear();
        }
    }
    out.write_all(&encode(&line))?;
    out.flush()
}

fn encode(text: &str) -> Vec<u8> {
    // Every character used above is in Latin-1, which windows-1252 extends.
    text.chars().map(|c| u8::try_from(u32::from(c)).expect("Latin-1 text")).collect()
}

/// A scratch project in a fresh temporary directory with the repository's `kubus.toml`, schemas, perturbation
/// tables and map geometries (the files `kubus.toml` and the schemas name).
pub fn scratch_project(repo: &Path) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("kubus-bench-{}", std::process::id()));
    for sub in ["cube-schemas/dimensions", "cube-schemas/cubes", "cube-schemas/sources", "ptables", "geo"] {
        let to = dir.join(sub);
        std::fs::create_dir_all(&to)?;
        for entry in std::fs::read_dir(repo.join(sub))? {
            let path = entry?.path();
            std::fs::copy(&path, to.join(path.file_name().expect("a file")))?;
        }
    }
    std::fs::copy(repo.join("kubus.toml"), dir.join("kubus.toml"))?;
    Ok(dir)
}
