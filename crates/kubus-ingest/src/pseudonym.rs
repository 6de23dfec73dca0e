//! Pseudonymisation: a person key is HMAC-SHA-256 over the normalised identity fields under a secret key.
//! The key never leaves this type: it has no accessor, and its `Debug` output is redacted.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret pseudonymisation key.
#[derive(Clone)]
pub struct PseudonymKey {
    secret: Vec<u8>,
    demo: bool,
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.demo { "PseudonymKey(demo, redacted)" } else { "PseudonymKey(redacted)" })
    }
}

impl PseudonymKey {
    /// A key for real data (from the environment or a key file).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        PseudonymKey { secret: secret.into(), demo: false }
    }

    /// The sample project's demo key; callers announce its use.
    pub fn demo(secret: impl Into<Vec<u8>>) -> Self {
        PseudonymKey { secret: secret.into(), demo: true }
    }

    /// Whether this is the demo key.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// The pseudonym of one identity: 128 bits of HMAC-SHA-256, hex. Fields are normalised (case, spaces,
    /// separators) and joined with a unit separator so that ("ab", "c") and ("a", "bc") differ.
    pub fn pseudonymise(&self, fields: &[&str]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                mac.update(b"\x1f");
            }
            mac.update(kubus_model::normalise(f).as_bytes());
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_normalised_and_keyed() {
        let a = PseudonymKey::new("secret-a");
        let b = PseudonymKey::new("secret-b");
        assert_eq!(a.pseudonymise(&["ABH-100007"]), a.pseudonymise(&[" abh-100007 "]));
        assert_ne!(a.pseudonymise(&["ABH-100007"]), b.pseudonymise(&["ABH-100007"]));
        assert_ne!(a.pseudonymise(&["ab", "c"]), a.pseudonymise(&["a", "bc"]));
        assert_eq!(a.pseudonymise(&["x"]).len(), 32);
        assert!(!format!("{a:?}").contains("secret"));
    }
}
