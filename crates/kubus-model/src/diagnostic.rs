//! Schema diagnostics: one problem with its file, line and path, and the list of all problems of a load.

use std::fmt;

/// One problem in a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The origin label of the file (usually its path).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Path inside the file, e.g. `measures[2].column`.
    pub path: String,
    /// What is wrong, in a sentence.
    pub message: String,
    /// Valid alternatives, if any.
    pub alternatives: Vec<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.alternatives.is_empty() {
            write!(f, " (valid: {})", self.alternatives.join(", "))?;
        }
        Ok(())
    }
}

/// All problems found while loading a project's schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} schema problem{}:", if n == 1 { "" } else { "s" })?;
        for d in &self.0 {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file, turning byte offsets into line numbers.
pub(crate) struct Sink<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Sink<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    pub fn at(&mut self, span: Option<std::ops::Range<usize>>, path: impl Into<String>, message: impl Into<String>) {
        self.with(span, path, message, Vec::new());
    }

    pub fn with(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        path: impl Into<String>,
        message: impl Into<String>,
        alternatives: Vec<String>,
    ) {
        let line = span.map(|s| self.line_of(s.start));
        self.out.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            path: path.into(),
            message: message.into(),
            alternatives,
        });
    }
}
