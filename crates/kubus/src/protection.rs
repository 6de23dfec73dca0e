//! The warehouse's own record of how its answers are protected (`protection.json` at the warehouse's top): written the
//! first time a project opens the warehouse, and compared with the project file every time after. A project file
//! that would protect the same warehouse less — suppression where the cell key method applied, another
//! perturbation table (answers under two tables could be set against each other), a lower threshold, more exempt
//! cubes, a new role that bypasses protection or runs SQL, another size of the magnitudes' noise — is refused, so that `-C` with another `kubus.toml`
//! cannot redirect a warehouse to a weaker configuration. An intended change is adopted with
//! `kubus protection --adopt` by whoever may write the warehouse.

use crate::{Error, Result};
use kubus_model::{Method, ProjectConfig};
use kubus_warehouse::Warehouse;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The record's file name in the warehouse.
pub(crate) const FILE: &str = "protection.json";

/// How a warehouse's answers are protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionRecord {
    /// The default method (`cell_key` or `suppression`).
    pub method: String,
    /// The perturbation table's fingerprint, if the cell key method is configured.
    pub ptable: Option<String>,
    /// The suppression threshold.
    pub threshold: u64,
    /// Cubes published without protection.
    pub exempt: BTreeSet<String>,
    /// Cubes protected by suppression although the default is the cell key method.
    pub suppressed_cubes: BTreeSet<String>,
    /// Roles that see exact numbers.
    pub bypass_roles: BTreeSet<String>,
    /// Roles that may run SQL.
    pub sql_roles: BTreeSet<String>,
    /// Roles whose answers are protected by suppression although the default is the cell key method.
    pub suppressed_roles: BTreeSet<String>,
    /// Roles that may read the quarantine's raw values.
    #[serde(default)]
    pub quarantine_roles: BTreeSet<String>,
    /// The largest noise of magnitudes in percent, if the cell key method is configured (absent in records
    /// written before magnitudes were perturbed).
    #[serde(default)]
    pub magnitude: Option<u32>,
}

impl ProtectionRecord {
    /// The protection a project file asks for.
    pub(crate) fn of(config: &ProjectConfig, ptable: Option<String>) -> ProtectionRecord {
        let d = &config.disclosure;
        let weak_method = |m: Method| m == Method::Suppression && d.method == Method::CellKey;
        ProtectionRecord {
            method: d.method.name().to_owned(),
            ptable,
            threshold: d.threshold,
            exempt: d.exempt.iter().cloned().collect(),
            suppressed_cubes: d.cube_methods.iter().filter(|(_, m)| weak_method(*m)).map(|(c, _)| c.clone()).collect(),
            bypass_roles: config.roles.iter().filter(|r| r.bypass_disclosure).map(|r| r.name.clone()).collect(),
            sql_roles: config.roles.iter().filter(|r| r.sql).map(|r| r.name.clone()).collect(),
            suppressed_roles: config
                .roles
                .iter()
                .filter(|r| r.method.is_some_and(weak_method))
                .map(|r| r.name.clone())
                .collect(),
            quarantine_roles: config.roles.iter().filter(|r| r.quarantine).map(|r| r.name.clone()).collect(),
            magnitude: d.cell_key.as_ref().map(|c| c.magnitude),
        }
    }

    /// How `self` (the project file) protects less than `recorded` (the warehouse), one sentence per way.
    pub fn weaker_than(&self, recorded: &ProtectionRecord) -> Vec<String> {
        let mut out = Vec::new();
        if recorded.method == Method::CellKey.name() && self.method != recorded.method {
            out.push(format!("method {} instead of {}", self.method, recorded.method));
        }
        if recorded.ptable.is_some() && self.ptable != recorded.ptable {
            out.push(format!(
                "perturbation table {} instead of {}",
                self.ptable.as_deref().unwrap_or("(none)"),
                recorded.ptable.as_deref().unwrap_or("(none)")
            ));
        }
        // Any other size, not only a smaller one: the same cell under two sizes has the same factor, and two
        // equations give the exact value.
        if recorded.magnitude.is_some() && self.magnitude != recorded.magnitude {
            let percent = |m: Option<u32>| m.map_or("(none)".to_owned(), |m| format!("{m} %"));
            out.push(format!("magnitude noise {} instead of {}", percent(self.magnitude), percent(recorded.magnitude)));
        }
        if self.threshold < recorded.threshold {
            out.push(format!("threshold {} instead of {}", self.threshold, recorded.threshold));
        }
        let added = |now: &BTreeSet<String>, then: &BTreeSet<String>, what: &str| {
            let new: Vec<&str> = now.difference(then).map(String::as_str).collect();
            (!new.is_empty()).then(|| format!("{what} {}", new.join(", ")))
        };
        out.extend(added(&self.exempt, &recorded.exempt, "exempt cubes"));
        out.extend(added(
            &self.suppressed_cubes,
            &recorded.suppressed_cubes,
            "suppression instead of the cell key method for cubes",
        ));
        out.extend(added(&self.bypass_roles, &recorded.bypass_roles, "roles that bypass protection:"));
        out.extend(added(&self.sql_roles, &recorded.sql_roles, "roles that run SQL:"));
        out.extend(added(
            &self.suppressed_roles,
            &recorded.suppressed_roles,
            "suppression instead of the cell key method for roles",
        ));
        out.extend(added(&self.quarantine_roles, &recorded.quarantine_roles, "roles that read the quarantine:"));
        out
    }
}

/// The warehouse's record, if it has one.
pub(crate) fn read(warehouse: &Warehouse) -> Result<Option<ProtectionRecord>> {
    let failed = |reason: String| Error::ProtectionRecord { path: warehouse.file_location(FILE), reason };
    match warehouse.read_file(FILE) {
        Ok(Some(text)) => serde_json::from_slice(&text).map(Some).map_err(|e| failed(e.to_string())),
        Ok(None) => Ok(None),
        Err(e) => Err(failed(reason(e))),
    }
}

/// Writes the record (replacing it whole).
pub(crate) fn write(warehouse: &Warehouse, record: &ProtectionRecord) -> Result<()> {
    let text = serde_json::to_string_pretty(record).expect("a record serialises");
    warehouse
        .write_file(FILE, text.into_bytes())
        .map_err(|e| Error::ProtectionRecord { path: warehouse.file_location(FILE), reason: reason(e) })
}

/// Why the record could not be read or written (its place is in the message already).
fn reason(e: kubus_warehouse::Error) -> String {
    match e {
        kubus_warehouse::Error::Directory { source, .. } => crate::error_chain(&source),
        e => crate::error_chain(&e),
    }
}

/// Checks the project file's protection against the warehouse's record, and records it where there is none yet.
/// A warehouse that cannot be written (a reader without the rights) is checked, not recorded.
pub(crate) fn check(warehouse: &Warehouse, current: &ProtectionRecord) -> Result<()> {
    match read(warehouse)? {
        Some(recorded) => {
            let weaker = current.weaker_than(&recorded);
            if weaker.is_empty() {
                Ok(())
            } else {
                Err(Error::WeakerProtection { warehouse: warehouse.file_location(""), weaker })
            }
        }
        None => {
            // Not being able to record is no reason to refuse a reader; the next writer records.
            let _ = write(warehouse, current);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ProtectionRecord {
        ProtectionRecord {
            method: "cell_key".into(),
            ptable: Some("abc".into()),
            threshold: 2,
            exempt: ["offers".to_owned()].into(),
            suppressed_cubes: BTreeSet::new(),
            bypass_roles: ["statistik".to_owned()].into(),
            sql_roles: ["statistik".to_owned()].into(),
            suppressed_roles: BTreeSet::new(),
            quarantine_roles: BTreeSet::new(),
            magnitude: Some(25),
        }
    }

    #[test]
    fn only_weaker_settings_are_named() {
        let recorded = record();
        assert!(recorded.weaker_than(&recorded).is_empty());
        let mut stricter = record();
        stricter.threshold = 3;
        stricter.exempt.clear();
        stricter.bypass_roles.clear();
        assert!(stricter.weaker_than(&recorded).is_empty(), "stricter is fine");
        let mut weaker = record();
        weaker.method = "suppression".into();
        weaker.ptable = None;
        weaker.threshold = 1;
        weaker.exempt.insert("newcomers".into());
        weaker.bypass_roles.insert("gast".into());
        weaker.magnitude = Some(30);
        let found = weaker.weaker_than(&recorded);
        assert_eq!(found.len(), 6, "{found:?}");
        assert!(
            found.iter().any(|f| f == "magnitude noise 30 % instead of 25 %"),
            "a larger noise is another noise too"
        );
        assert!(found[0].contains("method suppression instead of cell_key"));
        assert!(found.iter().any(|f| f == "roles that bypass protection: gast"));
    }
}
