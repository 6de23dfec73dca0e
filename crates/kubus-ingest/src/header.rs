//! Header assembly and input resolution: joins multi-line headers (filling merged cells), names the columns,
//! matches the mapping's inputs (`name`, `#2`, `@H3`, templates, unpivot names) to positions, and refuses a
//! header with a column that is neither mapped nor dropped.

use crate::error::{Error, Result};
use crate::rows::{Cell, Merge};
use kubus_model::{Input, Source, TemplatePart};
use regex::Regex;
use std::collections::BTreeMap;

/// The name under which columns are matched: lower case, white space collapsed, soft hyphens and end-of-line
/// hyphenation removed (`Gemeinde-schlüssel` = `Gemeindeschlüssel`, while `Baden-Württemberg` keeps its hyphen).
pub fn header_key(name: &str) -> String {
    let chars: Vec<char> = name.chars().filter(|&c| c != '\u{AD}').collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let hyphenation = c == '-'
            && i > 0
            && chars[i - 1].is_alphabetic()
            && chars.get(i + 1).is_some_and(|n| n.is_lowercase() || n.is_whitespace());
        if !hyphenation {
            out.extend(c.to_lowercase());
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Builds column names from the header lines: merged cells are filled, then each column's non-empty parts
/// are joined with ` / `, a part repeated from the line above counting once.
pub fn assemble(lines: &[(usize, Vec<Cell>)], merges: &[Merge]) -> Vec<String> {
    let width = lines.iter().map(|(_, c)| c.len()).max().unwrap_or(0);
    let mut grid: Vec<Vec<String>> = lines
        .iter()
        .map(|(_, cells)| (0..width).map(|j| cells.get(j).map(Cell::text).unwrap_or_default()).collect())
        .collect();
    for m in merges {
        let Some(top) = lines.iter().position(|(l, _)| *l == m.first_line) else { continue };
        let value = grid[top].get(m.first_column - 1).cloned().unwrap_or_default();
        for (i, (line, _)) in lines.iter().enumerate() {
            if (m.first_line..=m.last_line).contains(line) {
                let columns = m.first_column - 1..m.last_column.min(width);
                grid[i][columns].iter_mut().for_each(|cell| cell.clone_from(&value));
            }
        }
    }
    (0..width)
        .map(|j| {
            let mut parts: Vec<String> = Vec::new();
            for row in &grid {
                let part = row[j].split_whitespace().collect::<Vec<_>>().join(" ");
                if !part.is_empty() && parts.last() != Some(&part) {
                    parts.push(part);
                }
            }
            parts.join(" / ")
        })
        .collect()
}

/// Where a field's input comes from, once the header is known.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// A column of the line (0-based).
    Column(usize),
    /// A named group of the unpivot pattern, taken from the column's name.
    Group(usize),
    /// The value of the unpivoted cell.
    Value,
    /// A fixed cell above the header.
    Fixed(Cell),
    /// Concatenated parts.
    Template(Vec<Part>),
}

/// A part of a resolved template.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Input(Resolved),
}

/// An unpivoted column: its position and the texts of the pattern's groups in its name.
#[derive(Debug, Clone)]
pub struct WideColumn {
    pub column: usize,
    pub groups: Vec<String>,
}

/// The header of one file, resolved against its source.
#[derive(Debug, Clone)]
pub struct Header {
    pub names: Vec<String>,
    pub wide: Vec<WideColumn>,
    pub total: Option<usize>,
    used: Vec<usize>,
}

impl Header {
    /// Resolves the columns of a file: unpivot columns, and checks that no column is duplicated, missing or
    /// unaccounted for.
    pub fn new(source: &Source, file: &str, names: Vec<String>) -> Result<Header> {
        let keys: Vec<String> = names.iter().map(|n| header_key(n)).collect();
        for (i, k) in keys.iter().enumerate() {
            if !k.is_empty() && keys[..i].contains(k) {
                return Err(Error::DuplicateColumn { file: file.to_owned(), column: names[i].clone() });
            }
        }
        let mut header = Header { names, wide: Vec::new(), total: None, used: Vec::new() };
        if let Some(u) = source.unpivot() {
            let re = Regex::new(u.columns()).expect("validated by the model");
            for (column, name) in header.names.iter().enumerate() {
                if let Some(caps) = re.captures(name) {
                    let groups = u
                        .names()
                        .iter()
                        .map(|g| caps.name(g).map(|m| m.as_str().trim().to_owned()).unwrap_or_default())
                        .collect();
                    header.wide.push(WideColumn { column, groups });
                }
            }
            if header.wide.is_empty() {
                return Err(Error::NoWideColumns {
                    file: file.to_owned(),
                    pattern: u.columns().to_owned(),
                    columns: header.names.clone(),
                });
            }
            header.used.extend(header.wide.iter().map(|w| w.column));
            if let Some(total) = u.total() {
                match header.resolve(source, file, total, &BTreeMap::new())? {
                    Resolved::Column(c) => header.total = Some(c),
                    _ => {
                        return Err(Error::BadInput {
                            file: file.to_owned(),
                            input: format!("{total:?}"),
                            problem: "the unpivot total must be a column".into(),
                        });
                    }
                }
            }
        }
        Ok(header)
    }

    /// Resolves one input of the mapping; `titles` holds the lines above the header for `@` cells.
    pub fn resolve(
        &mut self,
        source: &Source,
        file: &str,
        input: &Input,
        titles: &BTreeMap<usize, Vec<Cell>>,
    ) -> Result<Resolved> {
        let resolved = match input {
            Input::Column(name) => {
                let unpivot = source.unpivot();
                if let Some(g) = unpivot.and_then(|u| u.names().iter().position(|n| n == name)) {
                    Resolved::Group(g)
                } else if unpivot.is_some_and(|u| u.value() == name) {
                    Resolved::Value
                } else {
                    let key = header_key(name);
                    match self.names.iter().position(|n| header_key(n) == key) {
                        Some(c) => Resolved::Column(c),
                        None => {
                            return Err(Error::MissingColumn {
                                file: file.to_owned(),
                                column: name.clone(),
                                closest: kubus_model::closest(name, self.names.iter().map(String::as_str)),
                            });
                        }
                    }
                }
            }
            Input::Position(n) => {
                if *n > self.names.len() {
                    return Err(Error::BadInput {
                        file: file.to_owned(),
                        input: format!("#{n}"),
                        problem: format!("the header has {} columns", self.names.len()),
                    });
                }
                Resolved::Column(n - 1)
            }
            Input::Cell { line, column } => {
                let cell = titles.get(line).and_then(|cells| cells.get(column - 1)).cloned();
                match cell {
                    Some(c) => Resolved::Fixed(c),
                    None => {
                        return Err(Error::BadInput {
                            file: file.to_owned(),
                            input: format!("cell at line {line}, column {column}"),
                            problem: "there is no such cell above the header".into(),
                        });
                    }
                }
            }
            Input::FileName => Resolved::Fixed(Cell::Text(file.to_owned())),
            Input::Given(Some(value)) => Resolved::Fixed(Cell::Text(value.clone())),
            Input::Given(None) => {
                return Err(Error::BadInput {
                    file: file.to_owned(),
                    input: "@set".into(),
                    problem: "the value is given at ingest: kubus ingest … --set field=value".into(),
                });
            }
            Input::Template(parts) => Resolved::Template(
                parts
                    .iter()
                    .map(|p| match p {
                        TemplatePart::Text(t) => Ok(Part::Text(t.clone())),
                        TemplatePart::Input(i) => Ok(Part::Input(self.resolve(source, file, i, titles)?)),
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        if let Resolved::Column(c) = resolved {
            self.used.push(c);
        }
        Ok(resolved)
    }

    /// Refuses a named column that is neither read nor dropped: it could carry identifying data.
    pub fn check_unmapped(&self, source: &Source, file: &str) -> Result<()> {
        let dropped: Vec<String> = source.dropped().iter().map(|d| header_key(d)).collect();
        for (c, name) in self.names.iter().enumerate() {
            if !name.is_empty() && !self.used.contains(&c) && !dropped.contains(&header_key(name)) {
                return Err(Error::UnmappedColumn {
                    file: file.to_owned(),
                    column: name.clone(),
                    source_name: source.name().to_owned(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(cells: &[&str]) -> Vec<Cell> {
        cells.iter().map(|c| Cell::Text((*c).to_owned())).collect()
    }

    #[test]
    fn hyphenation_and_case_do_not_matter() {
        assert_eq!(header_key("Gemeinde-schlüssel"), header_key("Gemeindeschlüssel"));
        assert_eq!(header_key("Gemeinde-\nschlüssel"), "gemeinde schlüssel");
        assert_eq!(header_key("Baden-Württemberg"), "baden-württemberg");
        assert_eq!(header_key("  LK /  SK "), "lk / sk");
    }

    #[test]
    fn merged_cells_fill_the_columns_below_and_beside() {
        let lines = vec![
            (4, text(&["Bundes-land", "Bevölkerung", "", "", "Fläche"])),
            (5, text(&["", "insgesamt", "männlich", "weiblich", ""])),
        ];
        let merges = [
            Merge { first_line: 4, last_line: 5, first_column: 1, last_column: 1 },
            Merge { first_line: 4, last_line: 4, first_column: 2, last_column: 4 },
        ];
        assert_eq!(
            assemble(&lines, &merges),
            ["Bundes-land", "Bevölkerung / insgesamt", "Bevölkerung / männlich", "Bevölkerung / weiblich", "Fläche"]
        );
        // Without merge information (CSV), only what is written counts.
        assert_eq!(assemble(&lines, &[])[2], "männlich");
    }
}
