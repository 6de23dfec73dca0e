//! Record keys: every statistical unit (a person) has one, for the cell key method. It is derived from the unit's
//! pseudonym, so nothing is stored in clear, and the same person has the same key in every month and cube. Facts
//! carry its low 16 bits (all the method uses: a cell's key is the sum of its units' keys modulo at most 2¹⁶) in
//! the column [`RECORD_KEY_COLUMN`], written at ingest so that a count need not read the person column.

/// The fact column with each fact's unit's record key, its low 16 bits.
pub const RECORD_KEY_COLUMN: &str = "_record_key";

/// A unit's record key: the first 64 bits of its pseudonym (hex, an HMAC-SHA-256 under the project key). A unit
/// that is no pseudonym (a cube whose sources map a plain identifier) gets 64 bits of a fixed hash of its text
/// (FNV-1a, then MurmurHash3's finaliser to spread the bits): record keys must never change between versions of
/// kubus, or two versions' answers could be subtracted. Either way the same person has the same key in every month
/// and cube.
pub fn record_key(unit: &str) -> i64 {
    match unit.as_bytes().get(..16).and_then(hex) {
        Some(key) => key as i64,
        None => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in unit.as_bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
            h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            h ^= h >> 33;
            h as i64
        }
    }
}

/// Sixteen hex digits as a number (the hot path of every count's cell key: no UTF-8 or radix machinery).
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some((value << 4) | u64::from(digit))
    })
}

/// The part of a record key that facts store (see [`RECORD_KEY_COLUMN`]).
pub fn stored_record_key(unit: &str) -> u16 {
    (record_key(unit) as u64 & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_gives_its_first_64_bits_and_anything_else_a_fixed_hash() {
        assert_eq!(record_key("00000000000000ff9999"), 255);
        assert_eq!(stored_record_key("0123456789abcdefffff"), 0xcdef, "the low 16 bits of the first 64");
        // A value that is no pseudonym: a fixed hash of its text.
        assert_eq!(record_key("ABH-100007"), record_key("ABH-100007"));
        assert_ne!(record_key("ABH-100007"), record_key("ABH-100008"));
    }
}
