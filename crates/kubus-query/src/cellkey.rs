//! The cell key method: consistent noise on counts. Every statistical unit has a record key (64 bits of its
//! pseudonym, which is itself an HMAC under the project key); a cell's key is the sum of its units' record keys
//! modulo the perturbation table's key range; the perturbation table (ptable) maps the cell's value and key to a
//! small noise value. The same set of units always gets the same noise, in any query, so the difference of two
//! answers is no longer a count of persons. Counts are perturbed inside the query plan, as they are aggregated
//! (see [`crate::published`]): ratios, shares, changes, sorting and limits only ever see perturbed counts.
//!
//! The table format is the ONS `cell-key-perturbation` package's: CSV with the columns `pcv` (the cell value the
//! row applies to, 1 … M), `ckey` (0 … K − 1) and `pvalue` (the noise). Values above M reuse the table's last
//! `wrap` rows, as the ONS package does for its 750-row tables (wrap 250); the default wrap of 1 applies the last
//! row, whose distribution is the one for every large value. Zero stays zero.
//!
//! Magnitudes (sums, averages' sums, minima, maxima) get the method's variant for magnitudes: noise scaled to the
//! cell's largest single value (a minimum's or maximum's to itself), `magnitude` percent of it times a factor
//! between 0.5 and 1 with a sign, both from the cell key of the records that have a value ([`magnitude_noise`]). A
//! value that one record alone makes up is never published exactly. Knows counts, values and keys, not the warehouse.

use crate::{Error, Result};
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use datafusion::prelude::Expr;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A perturbation table.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PTableParts", into = "PTableParts")]
pub struct PTable {
    /// Number of cell keys K (a power of two, at most 65,536).
    keys: u32,
    /// The largest cell value with rows of its own (M).
    rows: u32,
    /// Values above `rows` reuse the last `wrap` rows.
    wrap: u32,
    /// The noise of (value, key) at `(value - 1) * keys + key`.
    noise: Vec<i32>,
    /// SHA-256 of the table's contents and wrap, for recognising it (in plans and rollups).
    fingerprint: [u8; 32],
    /// Its first six bytes in hex, which every answer with noise names.
    short: String,
    /// The largest noise (in absolute terms), which every answer's notes name.
    max_noise: u32,
}

/// A perturbation table as it travels to another process (see `crate::wire`): checked again where it arrives.
#[derive(serde::Serialize, serde::Deserialize)]
struct PTableParts {
    keys: u32,
    rows: u32,
    wrap: u32,
    noise: Vec<i32>,
}

impl From<PTable> for PTableParts {
    fn from(t: PTable) -> PTableParts {
        PTableParts { keys: t.keys, rows: t.rows, wrap: t.wrap, noise: t.noise }
    }
}

impl TryFrom<PTableParts> for PTable {
    type Error = String;

    fn try_from(p: PTableParts) -> std::result::Result<PTable, String> {
        let cells = u64::from(p.rows) * u64::from(p.keys);
        let fits = p.keys.is_power_of_two() && p.keys <= 65_536 && p.rows >= 1 && (1..=p.rows).contains(&p.wrap);
        if !fits || cells != p.noise.len() as u64 {
            return Err(format!("not a perturbation table: {} keys, {} rows, wrap {}", p.keys, p.rows, p.wrap));
        }
        let negative = p.noise.iter().enumerate().any(|(i, &v)| (i as i64 / i64::from(p.keys) + 1) + i64::from(v) < 0);
        if negative {
            return Err("not a perturbation table: a noise makes its count negative".into());
        }
        Ok(PTable::from_noise(p.keys, p.rows, p.wrap, p.noise))
    }
}

impl PartialEq for PTable {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for PTable {}

impl Hash for PTable {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

/// How to generate a perturbation table (see [`PTable::generate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PTableParams {
    /// The largest noise, D: a count changes by at most this much.
    pub max_noise: u32,
    /// The noise's variance V for values large enough to be perturbed freely.
    pub variance: f64,
    /// Counts from 1 to this are never published (they become 0 or larger); 0 allows every value.
    pub small: u32,
    /// Number of cell keys K (a power of two); the noise's probabilities are multiples of 1/K.
    pub keys: u32,
}

impl PTable {
    /// Reads a table in the ONS format; `origin` names it in errors, `wrap` says how many of its last rows
    /// values above its largest value reuse.
    pub fn parse(origin: &str, text: &str, wrap: u32) -> Result<PTable> {
        let bad = |line: usize, message: String| Error::PTable { origin: origin.to_owned(), line, message };
        let mut lines = text.trim_start_matches('\u{feff}').lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let header: Vec<String> = match lines.next() {
            Some((_, l)) => l.split(',').map(|c| c.trim().trim_matches('"').to_ascii_lowercase()).collect(),
            None => return Err(bad(1, "the table is empty; it needs the columns pcv, ckey, pvalue".into())),
        };
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(1, format!("no column {name}; the columns must be pcv, ckey, pvalue")))
        };
        let (pcv_at, ckey_at, pvalue_at) = (column("pcv")?, column("ckey")?, column("pvalue")?);
        let mut entries: Vec<(u32, u32, i32)> = Vec::new();
        for (index, line) in lines {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim().trim_matches('"')).collect();
            let number = |at: usize, what: &str| -> Result<i64> {
                let text = cells.get(at).copied().unwrap_or("");
                text.parse::<i64>().map_err(|_| bad(index + 1, format!("{what} '{text}' is not a whole number")))
            };
            let (pcv, ckey, pvalue) = (number(pcv_at, "pcv")?, number(ckey_at, "ckey")?, number(pvalue_at, "pvalue")?);
            if !(1..=1_000_000).contains(&pcv) || !(0..65_536).contains(&ckey) || pvalue.abs() > 1_000_000 {
                return Err(bad(
                    index + 1,
                    format!("pcv {pcv}, ckey {ckey} or pvalue {pvalue} out of range (pcv 1…1000000, ckey 0…65535)"),
                ));
            }
            if pcv + pvalue < 0 {
                return Err(bad(index + 1, format!("the noise {pvalue} would make the count {pcv} negative")));
            }
            entries.push((pcv as u32, ckey as u32, pvalue as i32));
        }
        let rows = entries.iter().map(|e| e.0).max().ok_or_else(|| bad(1, "the table has no rows".into()))?;
        let keys = entries.iter().map(|e| e.1).max().unwrap_or(0) + 1;
        if !keys.is_power_of_two() {
            return Err(bad(
                1,
                format!("the cell keys run from 0 to {}; their number must be a power of two (256, 4096, …)", keys - 1),
            ));
        }
        if u64::from(rows) * u64::from(keys) > entries.len() as u64 {
            let needed = u64::from(rows) * u64::from(keys);
            return Err(bad(
                1,
                format!(
                    "the table has {} rows, but values 1…{rows} with {keys} keys each need {needed}",
                    entries.len()
                ),
            ));
        }
        if wrap == 0 || wrap > rows {
            return Err(bad(1, format!("wrap {wrap} must lie between 1 and the table's {rows} rows")));
        }
        let mut noise = vec![None; (rows * keys) as usize];
        for (pcv, ckey, pvalue) in entries {
            let slot = &mut noise[((pcv - 1) * keys + ckey) as usize];
            if slot.replace(pvalue).is_some_and(|old| old != pvalue) {
                return Err(bad(1, format!("pcv {pcv}, ckey {ckey} is given twice with different noise")));
            }
        }
        let noise = noise
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    bad(
                        1,
                        format!(
                            "no row for pcv {}, ckey {}: every value 1…{rows} needs all {keys} keys",
                            i as u32 / keys + 1,
                            i as u32 % keys
                        ),
                    )
                })
            })
            .collect::<Result<Vec<i32>>>()?;
        Ok(PTable::from_noise(keys, rows, wrap, noise))
    }

    fn from_noise(keys: u32, rows: u32, wrap: u32, noise: Vec<i32>) -> PTable {
        let mut digest = Sha256::new();
        digest.update(format!("{keys} {rows} {wrap}\n"));
        for v in &noise {
            digest.update(v.to_le_bytes());
        }
        let max_noise = noise.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
        let fingerprint: [u8; 32] = digest.finalize().into();
        let short = fingerprint.iter().take(6).map(|b| format!("{b:02x}")).collect();
        PTable { keys, rows, wrap, noise, fingerprint, short, max_noise }
    }

    /// Number of cell keys.
    pub fn keys(&self) -> u32 {
        self.keys
    }

    /// The largest noise in the table.
    pub fn max_noise(&self) -> u32 {
        self.max_noise
    }

    /// A short fingerprint of the table (hex), for explain and the audit log.
    pub fn fingerprint(&self) -> &str {
        &self.short
    }

    /// The table row a cell value reads: the value itself up to the last row, else one of the last `wrap` rows.
    #[inline]
    pub fn row_of(&self, value: u64) -> u32 {
        if value <= u64::from(self.rows) {
            value as u32
        } else if self.wrap == 1 {
            // Most tables: every larger value reads the last row (a division per published number costs more than
            // the rest of its lookup).
            self.rows
        } else {
            ((value - 1) % u64::from(self.wrap)) as u32 + (self.rows - self.wrap + 1)
        }
    }

    /// The published value of a count whose units' record keys sum (wrapping) to `key_sum`.
    #[inline]
    pub fn perturb(&self, value: i64, key_sum: i64) -> i64 {
        if value <= 0 {
            return value;
        }
        let key = (key_sum as u64 & u64::from(self.keys - 1)) as u32;
        let row = self.row_of(value as u64);
        value + i64::from(self.noise[((row - 1) * self.keys + key) as usize])
    }

    /// For each table row (value 1 … M), the probability of each noise value: how often it appears among the keys.
    pub fn distribution(&self, value: u32) -> Vec<(i32, f64)> {
        let row = self.row_of(u64::from(value.max(1)));
        let mut counts: std::collections::BTreeMap<i32, u32> = Default::default();
        for key in 0..self.keys {
            *counts.entry(self.noise[((row - 1) * self.keys + key) as usize]).or_default() += 1;
        }
        counts.into_iter().map(|(d, n)| (d, f64::from(n) / f64::from(self.keys))).collect()
    }

    /// The table as CSV in the ONS format.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("pcv,ckey,pvalue\n");
        for row in 1..=self.rows {
            for key in 0..self.keys {
                out += &format!("{row},{key},{}\n", self.noise[((row - 1) * self.keys + key) as usize]);
            }
        }
        out
    }

    /// A table by the maximum-entropy approach of the cell key method (Giessing 2016, as the `ptable` package of
    /// the sdcTools builds them): for each value i, the noise d ∈ [−D, D] with i + d ≥ 0 and i + d not among the
    /// small values has the distribution of largest entropy with mean 0 and variance V, p(d) ∝ exp(a·d + b·d²).
    /// Where the allowed outcomes cannot reach variance V, the variance is left free (mean 0 only); where not
    /// even mean 0 can be reached, the outcome closest to i. Probabilities are rounded to multiples of 1/K
    /// (largest remainders), and key k gets the k-th noise in ascending order. Values above D + small + 1 have
    /// no forbidden outcome and share the last row.
    pub fn generate(params: &PTableParams) -> std::result::Result<PTable, String> {
        let PTableParams { max_noise, variance, small, keys } = *params;
        if !keys.is_power_of_two() || !(2..=65_536).contains(&keys) {
            return Err(format!("the number of keys must be a power of two from 2 to 65536, not {keys}"));
        }
        if max_noise == 0 || max_noise > 100 {
            return Err(format!("the largest noise must lie between 1 and 100, not {max_noise}"));
        }
        if !(variance > 0.0 && variance <= f64::from(max_noise * max_noise)) {
            return Err(format!(
                "the variance must be above 0 and at most D² = {}, not {variance}",
                max_noise * max_noise
            ));
        }
        let rows = small + max_noise + 1;
        let mut noise = Vec::with_capacity((rows * keys) as usize);
        for value in 1..=rows as i64 {
            let d = max_noise as i64;
            let support: Vec<i64> =
                (-d..=d).filter(|&n| value + n >= 0 && !(1..=i64::from(small)).contains(&(value + n))).collect();
            let p = max_entropy(&support, variance);
            let counts = round_to_keys(&support, &p, keys);
            for (n, count) in support.iter().zip(counts) {
                noise.extend(std::iter::repeat_n(*n as i32, count as usize));
            }
        }
        Ok(PTable::from_noise(keys, rows, 1, noise))
    }
}

/// The maximum-entropy distribution over `support` (noise values) with mean 0 and the given variance, or mean 0
/// alone where the variance cannot be reached, or all mass on the value closest to 0 where not even that can.
fn max_entropy(support: &[i64], variance: f64) -> Vec<f64> {
    let weights = |a: f64, b: f64| -> Vec<f64> {
        let exps: Vec<f64> = support.iter().map(|&d| a * d as f64 + b * (d * d) as f64).collect();
        let top = exps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = exps.iter().map(|e| (e - top).exp()).collect();
        let total: f64 = w.iter().sum();
        w.into_iter().map(|x| x / total).collect()
    };
    let moment = |p: &[f64], k: i32| -> f64 { p.iter().zip(support).map(|(p, &d)| p * (d as f64).powi(k)).sum() };
    let both_signs = support.iter().any(|&d| d < 0) && support.iter().any(|&d| d > 0);
    if !both_signs {
        let closest = support.iter().enumerate().min_by_key(|(_, d)| d.abs()).map(|(i, _)| i).unwrap_or(0);
        return (0..support.len()).map(|i| if i == closest { 1.0 } else { 0.0 }).collect();
    }
    // Newton's method on (mean, variance) in (a, b); the Jacobian is the covariance of (d, d²).
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for _ in 0..500 {
        let p = weights(a, b);
        let (m1, m2, m3, m4) = (moment(&p, 1), moment(&p, 2), moment(&p, 3), moment(&p, 4));
        let (f1, f2) = (m1, m2 - variance);
        if f1.abs() < 1e-12 && f2.abs() < 1e-12 {
            return p;
        }
        let (j11, j12, j22) = (m2 - m1 * m1, m3 - m1 * m2, m4 - m2 * m2);
        let det = j11 * j22 - j12 * j12;
        if det.abs() < 1e-300 || !det.is_finite() {
            break;
        }
        let (da, db) = ((j22 * f1 - j12 * f2) / det, (j11 * f2 - j12 * f1) / det);
        let step = 1.0f64.min(2.0 / (da.abs() + db.abs()).max(1e-300));
        a -= step * da;
        b -= step * db;
        if !a.is_finite() || !b.is_finite() || a.abs() > 60.0 || b.abs() > 60.0 {
            break;
        }
    }
    // The variance is out of reach: mean 0 only (b = 0), by bisection on a (the mean rises with a).
    let (mut low, mut high) = (-60.0f64, 60.0f64);
    for _ in 0..200 {
        let mid = (low + high) / 2.0;
        if moment(&weights(mid, 0.0), 1) > 0.0 {
            high = mid;
        } else {
            low = mid;
        }
    }
    weights((low + high) / 2.0, 0.0)
}

/// Probabilities as whole numbers of keys out of `keys`: largest remainders first, then single keys moved between
/// noise values where that brings the mean closer to 0 at the least distortion (rounding must not bias the noise).
fn round_to_keys(support: &[i64], p: &[f64], keys: u32) -> Vec<u32> {
    let exact: Vec<f64> = p.iter().map(|p| p * f64::from(keys)).collect();
    let mut counts: Vec<u32> = exact.iter().map(|x| x.floor() as u32).collect();
    let mut left = keys - counts.iter().sum::<u32>();
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| (exact[j] - exact[j].floor()).total_cmp(&(exact[i] - exact[i].floor())));
    for i in order {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    let off = |counts: &[u32]| -> i64 { counts.iter().zip(support).map(|(&n, &d)| i64::from(n) * d).sum() };
    for _ in 0..keys {
        let sum = off(&counts);
        if sum == 0 {
            break;
        }
        let distortion = |i: usize, n: u32| (f64::from(n) - exact[i]).abs();
        let best = (0..counts.len())
            .filter(|&i| counts[i] > 0)
            .flat_map(|i| (0..counts.len()).filter(move |&j| j != i).map(move |j| (i, j)))
            .filter(|&(i, j)| (sum - support[i] + support[j]).abs() < sum.abs())
            .min_by(|&(i, j), &(k, l)| {
                let cost = |i: usize, j: usize| {
                    distortion(i, counts[i] - 1) - distortion(i, counts[i]) + distortion(j, counts[j] + 1)
                        - distortion(j, counts[j])
                };
                cost(i, j)
                    .total_cmp(&cost(k, l))
                    .then((sum - support[i] + support[j]).abs().cmp(&(sum - support[k] + support[l]).abs()))
            });
        let Some((i, j)) = best else { break };
        counts[i] -= 1;
        counts[j] += 1;
    }
    counts
}

pub use kubus_model::record_key;

/// The record keys of facts that have `schema`: their stored column (see [`kubus_model::RECORD_KEY_COLUMN`]), else
/// computed from the unit column (a table written before kubus stored them).
pub fn record_keys_in(schema: &datafusion::common::DFSchema, unit: &str) -> Expr {
    if schema.has_column_with_unqualified_name(kubus_model::RECORD_KEY_COLUMN) {
        datafusion::logical_expr::cast(datafusion::prelude::col(kubus_model::RECORD_KEY_COLUMN), DataType::Int64)
    } else {
        record_key_of(datafusion::prelude::col(unit))
    }
}

/// The column of a rollup that stores a count's record-key sum.
pub fn stored_key_column(measure: &str) -> String {
    format!("{measure}__ck")
}

/// How a cube's counts are perturbed: the table, and the column whose values are the units (their record keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Noise {
    /// The perturbation table.
    pub ptable: Arc<PTable>,
    /// The value column that identifies a unit (the person key), whose record key a count's cell key sums.
    pub unit: String,
    /// A magnitude's noise is at most this many percent of the cell's largest single value.
    pub magnitude: u32,
}

/// The factor of a magnitude's noise for a cell whose records' keys sum (wrapping) to `key_sum`: between 0.5 and 1
/// in either direction, so that the noise is never near zero. Taken through MurmurHash3's finaliser from the sum's
/// low 16 bits, so it is independent of a count's noise (the sum modulo the ptable's keys); the same key always
/// gives the same factor.
pub fn magnitude_noise(key_sum: i64) -> f64 {
    // Only the key's low 16 bits, as for counts: a rollup's bitmaps and a stored key carry no more.
    let mut h = (key_sum as u64 & 0xFFFF) ^ 0x9e37_79b9_7f4a_7c15;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    let size = 0.5 + 0.5 * ((h >> 11) as f64 / (1u64 << 53) as f64);
    if h & 1 == 0 { size } else { -size }
}

/// The published value of a magnitude: `value` plus `percent` % of `largest` (the cell's largest single value, in
/// absolute terms) times the cell's factor. Zero with no value larger than zero stays zero.
pub fn perturb_magnitude(value: f64, largest: f64, key_sum: i64, percent: u32) -> f64 {
    value + largest.abs() * f64::from(percent) / 100.0 * magnitude_noise(key_sum)
}

/// `kubus_record_key(text)`: the record key of each unit (see [`record_key`]); null stays null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct RecordKeyUdf {
    signature: Signature,
}

impl ScalarUDFImpl for RecordKeyUdf {
    fn name(&self) -> &str {
        "kubus_record_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> datafusion::common::Result<ColumnarValue> {
        Ok(ColumnarValue::Array(Arc::new(record_keys(&args.args[0].to_array(args.number_rows)?)?)))
    }
}

/// The record keys of an array of units (text, or anything that casts to text); null stays null.
pub(crate) fn record_keys(array: &ArrayRef) -> datafusion::common::Result<Int64Array> {
    Ok(match array.data_type() {
        DataType::Utf8View => array.as_string_view().iter().map(|v| v.map(record_key)).collect(),
        DataType::Utf8 => array.as_string::<i32>().iter().map(|v| v.map(record_key)).collect(),
        _ => {
            let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
            text.as_string::<i32>().iter().map(|v| v.map(record_key)).collect()
        }
    })
}

/// The record keys of a column of units.
pub fn record_key_of(unit: Expr) -> Expr {
    record_key_udf().call(vec![unit])
}

pub(crate) fn record_key_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(RecordKeyUdf { signature: Signature::any(1, Volatility::Immutable) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ons_format_is_read_and_large_values_wrap_as_the_ons_package_does() {
        // A two-row table with four keys; wrap 1 reads the last row for every larger value.
        let text = "\"pcv\",\"ckey\",\"pvalue\"\n1,0,-1\n1,1,0\n1,2,1\n1,3,2\n2,0,-2\n2,1,-1\n2,2,1\n2,3,0\n";
        let t = PTable::parse("t.csv", text, 1).unwrap();
        assert_eq!((t.keys(), t.max_noise()), (4, 2));
        assert_eq!(t.perturb(0, 3), 0, "zero stays zero");
        assert_eq!(t.perturb(1, 2), 2);
        assert_eq!(t.perturb(2, 4 + 1), 1, "the key is the sum modulo the number of keys");
        assert_eq!(t.perturb(1000, -1), 1000, "a negative (wrapped) sum has key 3");
        assert_eq!(t.perturb(7, 0), 5);
        // The ONS rule: with 750 rows and wrap 250, value 751 reads row 501 and 1000 reads row 750.
        let big = PTable::from_noise(2, 750, 250, vec![0; 1500]);
        assert_eq!((big.row_of(750), big.row_of(751), big.row_of(1000), big.row_of(1001)), (750, 501, 750, 501));
    }

    #[test]
    fn magnitude_noise_is_never_small_and_has_no_direction() {
        // Over many keys (successive sums, as cells differing by one record have), the factor lies in ±[0.5, 1],
        // half of the cells go up and the mean size is 0.75 — counted here, not taken from the function.
        let factors: Vec<f64> =
            (0..100_000i64).map(|k| magnitude_noise(k.wrapping_mul(0x2545_f491_4f6c_dd1d))).collect();
        assert!(factors.iter().all(|f| (0.5..=1.0).contains(&f.abs())));
        let up = factors.iter().filter(|f| **f > 0.0).count() as f64 / factors.len() as f64;
        let size = factors.iter().map(|f| f.abs()).sum::<f64>() / factors.len() as f64;
        assert!((up - 0.5).abs() < 0.01 && (size - 0.75).abs() < 0.005, "up {up}, mean size {size}");
        assert_eq!(magnitude_noise(42), magnitude_noise(42), "the same cell, the same noise");
        // One record of 40 hours with 20 %: published between 44 and 48 or between 32 and 36, never 40.
        let published = perturb_magnitude(40.0, 40.0, 7, 20);
        assert!((32.0..=36.0).contains(&published) || (44.0..=48.0).contains(&published), "{published}");
        assert_eq!(perturb_magnitude(0.0, 0.0, 7, 20), 0.0, "nothing stays nothing");
    }

    #[test]
    fn broken_tables_are_refused_with_their_line() {
        let err = |text: &str| PTable::parse("t.csv", text, 1).unwrap_err().to_string();
        assert!(err("pcv,ckey\n1,0\n").contains("no column pvalue"));
        assert!(err("pcv,ckey,pvalue\n1,0,0\n1,1,0\n1,2,0\n").contains("power of two"));
        assert!(err("pcv,ckey,pvalue\n1,0,-2\n1,1,0\n").contains("negative"));
        assert!(err("pcv,ckey,pvalue\n1,0,0\n1,1,x\n").contains("line 3"));
        assert!(err("pcv,ckey,pvalue\n1,0,0\n1,1,0\n2,0,0\n").contains("values 1…2 with 2 keys each need 4"));
        assert!(
            err("pcv,ckey,pvalue\n1,0,0\n1,1,0\n2,0,0\n2,0,0\n").contains("no row for pcv 2, ckey 1"),
            "a repeated row fills no gap"
        );
        assert!(
            err("pcv,ckey,pvalue\n999999,65535,0\n").contains("need"),
            "a huge table is refused before it is allocated"
        );
        assert_eq!(
            PTable::parse("t.csv", "\u{feff}pcv,ckey,pvalue\n1,0,0\n1,1,0\n", 1).unwrap().keys(),
            2,
            "a byte-order mark is no part of the header"
        );
    }

    #[test]
    fn generated_tables_keep_their_promises() {
        let params = PTableParams { max_noise: 3, variance: 2.0, small: 2, keys: 256 };
        let t = PTable::generate(&params).unwrap();
        assert_eq!(t.max_noise(), 3);
        for value in 1..=20u32 {
            let dist = t.distribution(value);
            let mean: f64 = dist.iter().map(|(d, p)| f64::from(*d) * p).sum();
            let var: f64 = dist.iter().map(|(d, p)| f64::from(*d).powi(2) * p).sum();
            assert!(mean.abs() <= 2.0 / 256.0 + 1e-9, "value {value}: mean {mean}");
            for (d, _) in &dist {
                let published = value as i32 + d;
                assert!(published == 0 || published > 2, "value {value} may be published as {published}");
                assert!(d.abs() <= 3);
            }
            if value > 5 {
                assert!((var - 2.0).abs() < 0.05, "value {value}: variance {var}");
            }
        }
        // Read back from its own CSV, the table is the same.
        assert_eq!(PTable::parse("g.csv", &t.to_csv(), 1).unwrap(), t);
    }

    #[test]
    fn record_keys_come_from_the_pseudonym() {
        assert_eq!(record_key("00000000000000ffabcdef"), 255);
        assert_eq!(record_key("ffffffffffffffff0000"), -1);
        assert_ne!(record_key("not a pseudonym"), record_key("not a pseudonym!"));
        // Fixed for good: FNV-1a of "a" is 0xaf63dc4c8601ec8c (the algorithm's published test vector); with
        // MurmurHash3's finaliser, computed independently in Python, 9413272369427828315 as an unsigned number.
        assert_eq!(record_key("a") as u64, 9_413_272_369_427_828_315);
        let low_bytes: std::collections::HashSet<u8> =
            (0..2000).map(|i| record_key(&format!("P{i:07}")) as u8).collect();
        assert!(low_bytes.len() > 240, "the low bits of the keys of consecutive ids spread: {}", low_bytes.len());
    }
}
