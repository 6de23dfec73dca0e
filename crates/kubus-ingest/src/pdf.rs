//! Tables in a PDF's text layer → rows, as a sheet would give them. pdf-extract hands out every glyph with its
//! position; here glyphs become text lines (by their baseline), lines become cells by the x positions of the
//! table's header, and a record whose cells wrap over several lines becomes one row again. Every text line of
//! the document is numbered (1, 2, … over all pages) and accounted for: lines before the table, the header and its
//! repetitions on later pages, the page headers above them, and the lines of the table itself, which the layout's
//! rules read like any sheet's rows. A document without a text layer (a scan) or a damaged one is refused whole.

use crate::error::{Error, Result};
use crate::header::header_key;
use crate::outcome::{Skip, Skipped};
use crate::rows::{Cell, Row};
use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

/// The table of one PDF: its header, its lines below the header as rows, and the lines around it.
pub struct Table {
    /// The header's column names, left to right.
    pub header: Vec<String>,
    /// The lines below the first header, as rows (a record wrapped over several lines is one row spanning them).
    pub rows: Vec<Row>,
    /// Lines accounted for before the rows: the reason and how many.
    pub skipped: Skipped,
    /// The first line of every page (1-based), for telling a line's page.
    page_starts: Vec<usize>,
}

impl Table {
    /// Reads the table of a PDF whose header holds every column in `columns` (header keys; `known` adds the
    /// names of further columns it may have, such as dropped ones), joining wrapped
    /// records when `record_column` is given. `is_skipped` tells the lines the layout skips (page footers): they
    /// are handed on as one cell of the whole line's text, and never continue a record.
    pub fn read(
        name: &str,
        bytes: &[u8],
        columns: &[String],
        known: &[String],
        record_column: Option<&str>,
        is_skipped: &dyn Fn(&Row) -> bool,
    ) -> Result<Table> {
        let pages = glyphs(name, bytes)?;
        let pages: Vec<Vec<Line>> = pages.into_iter().map(lines).collect();
        let mut page_starts = Vec::with_capacity(pages.len());
        let mut number = 1;
        for page in &pages {
            page_starts.push(number);
            number += page.len();
        }
        let header_at = |page: &[Line]| Header::find(page, columns, known);
        let Some(first) = pages.iter().position(|p| header_at(p).is_some()) else {
            return Err(Error::NoPdfTable { file: name.to_owned(), columns: columns.to_vec() });
        };
        let mut skipped = Skipped::default();
        let mut skip = |reason: Skip, n: usize| skipped.add(&reason, n);
        skip(Skip::PageWithoutTable, pages[..first].iter().map(Vec::len).sum());
        let Header { at, lines: header_lines, cells } = header_at(&pages[first]).expect("found above");
        let starts: Vec<f64> = cells.iter().map(|c| c.x).collect();
        let header: Vec<String> = cells.into_iter().map(|c| c.text).collect();
        skip(Skip::Title, at);
        skip(Skip::Header, header_lines);
        // The header holds every one of `columns`, the record column among them (the caller adds it).
        let record_at = match record_column.map(header_key) {
            None => None,
            Some(key) => Some(
                header
                    .iter()
                    .position(|h| header_key(h) == key)
                    .ok_or_else(|| Error::NoPdfTable { file: name.to_owned(), columns: vec![key] })?,
            ),
        };
        let mut rows: Vec<Row> = Vec::new();
        for (p, page) in pages.iter().enumerate().skip(first) {
            let mut body = page.as_slice();
            let mut line = page_starts[p];
            if p == first {
                body = &body[at + header_lines..];
                line += at + header_lines;
            } else if let Some(again) = header_at(page) {
                skip(Skip::PageHeader, again.at);
                skip(Skip::RepeatedHeader, again.lines);
                body = &body[again.at + again.lines..];
                line += again.at + again.lines;
            }
            // A record continues on the next line only on the same page, close below its last line.
            let mut previous: Option<(usize, f64, f64)> = None;
            for text in body {
                // The layout's rules read a line as a whole: a page footer centred under the table spans columns.
                let whole = Row {
                    line,
                    span: 1,
                    cells: text.split(&[f64::NEG_INFINITY]).into_iter().map(Cell::Text).collect(),
                };
                if is_skipped(&whole) {
                    rows.push(whole);
                    previous = None;
                    line += 1;
                    continue;
                }
                let cells = text.split(&starts);
                let continues = record_at.is_some_and(|r| cells[r].is_empty())
                    && previous.is_some_and(|(index, y, size)| {
                        index + 1 == rows.len() && text.y - y < 2.0 * size.max(text.size)
                    });
                if continues {
                    let record = rows.last_mut().expect("a previous row");
                    record.span += 1;
                    for (cell, more) in record.cells.iter_mut().zip(cells) {
                        let Cell::Text(cell) = cell else { unreachable!("PDF cells are text") };
                        join(cell, &more);
                    }
                } else {
                    rows.push(Row { line, span: 1, cells: cells.into_iter().map(Cell::Text).collect() });
                }
                previous = Some((rows.len() - 1, text.y, text.size));
                line += 1;
            }
        }
        Ok(Table { header, rows, skipped, page_starts })
    }

    /// The page of a line, and the line's number on its page (both 1-based).
    pub fn place(&self, line: usize) -> (usize, usize) {
        let page = self.page_starts.partition_point(|&start| start <= line).max(1);
        (page, line - self.page_starts[page - 1] + 1)
    }
}

/// Appends a wrapped cell's next line: after a space, or directly after a hyphen that ends the line.
fn join(cell: &mut String, more: &str) {
    if more.is_empty() {
        return;
    }
    if !cell.is_empty() && !cell.ends_with('-') {
        cell.push(' ');
    }
    cell.push_str(more);
}

/// One glyph: where it starts and ends on the line, its baseline (from the top of the page), its size.
#[derive(Debug, Clone)]
struct Glyph {
    x: f64,
    end: f64,
    y: f64,
    size: f64,
    text: String,
}

/// Collects the glyphs of every page.
#[derive(Default)]
struct Glyphs {
    pages: Vec<Vec<Glyph>>,
    height: f64,
}

impl OutputDev for Glyphs {
    fn begin_page(&mut self, _: u32, media_box: &MediaBox, _: Option<(f64, f64, f64, f64)>) -> Result<(), OutputError> {
        self.height = media_box.ury - media_box.lly;
        self.pages.push(Vec::new());
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _: f64,
        font_size: f64,
        text: &str,
    ) -> Result<(), OutputError> {
        // The glyph's size on the page: the side of the square with the area of its transformed em box.
        let size = (font_size * (trm.m11 + trm.m21) * font_size * (trm.m12 + trm.m22)).abs().sqrt();
        let (x, y) = (trm.m31, self.height - trm.m32);
        if let Some(page) = self.pages.last_mut() {
            page.push(Glyph { x, end: x + width * size, y, size, text: text.to_owned() });
        }
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// The glyphs of every page of a PDF. Refuses a damaged, cut-short or encrypted file and a page that shows
/// something but has no text (a scan): nothing is read half.
fn glyphs(name: &str, bytes: &[u8]) -> Result<Vec<Vec<Glyph>>> {
    let damaged = |problem: String| Error::DamagedPdf { file: name.to_owned(), problem };
    if !bytes.starts_with(b"%PDF-") {
        return Err(damaged("it does not begin with %PDF-: it is not a PDF".into()));
    }
    // A PDF ends with %%EOF; one that does not was cut short, and a parser that mends it could lose pages.
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    if memchr::memmem::rfind(tail, b"%%EOF").is_none() {
        return Err(damaged("it does not end with %%EOF: the file was cut short".into()));
    }
    // pdf-extract panics on some damaged files (unwraps in its font code); a damaged file must be an error for
    // that file, never a crash of the ingest.
    let read = std::panic::catch_unwind(|| -> Result<Vec<Vec<Glyph>>> {
        let document = lopdf::Document::load_mem(bytes).map_err(|e| damaged(e.to_string()))?;
        if document.is_encrypted() {
            return Err(damaged("it is encrypted; save it again without a password".into()));
        }
        let mut glyphs = Glyphs::default();
        pdf_extract::output_doc(&document, &mut glyphs).map_err(|e| damaged(e.to_string()))?;
        // A page with content but without a single glyph is an image of text.
        for (page, (_, id)) in glyphs.pages.iter().zip(document.get_pages()) {
            let shows = document.get_page_content(id).map(|c| c.iter().any(|b| !b.is_ascii_whitespace()));
            if page.iter().all(|g| g.text.trim().is_empty()) && shows.unwrap_or(true) {
                return Err(Error::PdfWithoutText { file: name.to_owned() });
            }
        }
        Ok(glyphs.pages)
    });
    read.unwrap_or_else(|_| Err(damaged("its contents cannot be read".into())))
}

/// A line of text: glyphs on one baseline, left to right.
struct Line {
    y: f64,
    size: f64,
    glyphs: Vec<Glyph>,
}

/// The table's header on a page: its first line, how many lines its names take, its cells.
struct Header {
    at: usize,
    lines: usize,
    cells: Vec<HeaderCell>,
}

impl Header {
    /// The first header on a page that holds every one of `columns` (header keys), its names among `known`: one
    /// line, or else names wrapped over two or three lines close below each other ("Geburts-" over "datum").
    fn find(page: &[Line], columns: &[String], known: &[String]) -> Option<Header> {
        let holds = |cells: &[HeaderCell]| {
            let keys: Vec<String> = cells.iter().map(|c| header_key(&c.text)).collect();
            !columns.is_empty() && columns.iter().all(|c| keys.contains(c))
        };
        (1..=3).find_map(|lines| {
            (0..page.len().saturating_sub(lines - 1)).find_map(|at| {
                let stack = &page[at..at + lines];
                let close = stack.windows(2).all(|w| w[1].y - w[0].y < 2.0 * w[0].size.max(w[1].size));
                let cells = if lines == 1 { stack[0].cells(known) } else { stacked_cells(stack, known) };
                (close && holds(&cells)).then_some(Header { at, lines, cells })
            })
        })
    }
}

/// The header cells of names wrapped over `lines`: words that overlap from left to right are one column's, its
/// words read line by line (joined as a wrapped cell is), and the columns read as one line's words.
fn stacked_cells(lines: &[Line], known: &[String]) -> Vec<HeaderCell> {
    let mut words: Vec<(usize, Word)> =
        lines.iter().enumerate().flat_map(|(i, line)| line.words().into_iter().map(move |w| (i, w))).collect();
    words.sort_by(|a, b| a.1.x.total_cmp(&b.1.x));
    // Columns left to right: a word starting before the column so far ends belongs to it.
    let mut columns: Vec<Vec<(usize, Word)>> = Vec::new();
    for word in words {
        match columns.last_mut() {
            Some(column) if column.iter().any(|(i, w)| *i != word.0 && word.1.x < w.end) => column.push(word),
            _ => columns.push(vec![word]),
        }
    }
    let size = lines.iter().map(|l| l.size).fold(0.0, f64::max);
    let stacked = columns.into_iter().map(|mut column| {
        column.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.x.total_cmp(&b.1.x)));
        let (x, end) =
            column.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(x, end), (_, w)| (x.min(w.x), end.max(w.end)));
        let mut text = String::new();
        let mut last = None;
        for (i, w) in &column {
            if last == Some(*i) {
                join_word(&mut text, &w.text);
            } else {
                // A name hyphenated at the line's end is one word again ("Geburts-" "datum").
                if text.ends_with('-') && w.text.starts_with(char::is_lowercase) {
                    text.pop();
                    text.push_str(&w.text);
                } else {
                    join(&mut text, &w.text);
                }
            }
            last = Some(*i);
        }
        Word { x, end, text }
    });
    cells_of(stacked.collect(), size, known)
}

/// A header cell: where it starts, and its text.
struct HeaderCell {
    x: f64,
    text: String,
}

/// A word: where it starts, and its text.
struct Word {
    x: f64,
    end: f64,
    text: String,
}

impl Line {
    /// The line's words: runs of glyphs without a space glyph or a gap of more than 0.15 of the text size.
    fn words(&self) -> Vec<Word> {
        let mut words: Vec<Word> = Vec::new();
        let mut open = false;
        for g in &self.glyphs {
            if g.text.trim().is_empty() {
                open = false;
                continue;
            }
            match words.last_mut() {
                Some(w) if open && g.x - w.end <= 0.15 * self.size => {
                    w.text.push_str(&g.text);
                    w.end = g.end;
                }
                _ => words.push(Word { x: g.x, end: g.end, text: g.text.clone() }),
            }
            open = true;
        }
        words
    }

    /// The line read as a header whose column names are among `known` (see [`cells_of`]).
    fn cells(&self, known: &[String]) -> Vec<HeaderCell> {
        cells_of(self.words(), self.size, known)
    }

    /// The line's text by the columns that start at `starts`: a word belongs to the last column starting left of
    /// it (half a text size of slack; words left of the first column belong to it).
    fn split(&self, starts: &[f64]) -> Vec<String> {
        let mut cells = vec![String::new(); starts.len()];
        for word in self.words() {
            let column = starts.iter().rposition(|&s| s <= word.x + 0.5 * self.size).unwrap_or(0);
            join_word(&mut cells[column], &word.text);
        }
        cells
    }
}

/// Header cells from a header's words whose text is `size` high: the longest run of words that is a known name
/// (header keys) is a cell; other words make cells of their own, apart where they are more than 0.8 of the text
/// size apart (an unknown column, which the mapping must then map or drop).
fn cells_of(words: Vec<Word>, size: f64, known: &[String]) -> Vec<HeaderCell> {
    let mut cells: Vec<HeaderCell> = Vec::new();
    let mut unknown_end: Option<f64> = None;
    let mut i = 0;
    while i < words.len() {
        let run = (i + 1..=words.len().min(i + 6)).rev().find(|&j| {
            let text: Vec<&str> = words[i..j].iter().map(|w| w.text.as_str()).collect();
            known.contains(&header_key(&text.join(" ")))
        });
        match run {
            Some(j) => {
                let text: Vec<&str> = words[i..j].iter().map(|w| w.text.as_str()).collect();
                cells.push(HeaderCell { x: words[i].x, text: text.join(" ") });
                unknown_end = None;
                i = j;
            }
            None => {
                let word = &words[i];
                match (cells.last_mut(), unknown_end) {
                    (Some(cell), Some(end)) if word.x - end < 0.8 * size => {
                        cell.text.push(' ');
                        cell.text.push_str(&word.text);
                    }
                    _ => cells.push(HeaderCell { x: word.x, text: word.text.clone() }),
                }
                unknown_end = Some(word.end);
                i += 1;
            }
        }
    }
    cells
}

fn join_word(cell: &mut String, word: &str) {
    if !cell.is_empty() {
        cell.push(' ');
    }
    cell.push_str(word);
}

/// Groups a page's glyphs into lines: a glyph whose baseline lies within 0.3 of the text size of a line's
/// belongs to it; lines from the top of the page down.
fn lines(mut glyphs: Vec<Glyph>) -> Vec<Line> {
    glyphs.retain(|g| g.x.is_finite() && g.y.is_finite() && g.size.is_finite());
    glyphs.sort_by(|a, b| a.y.total_cmp(&b.y).then(a.x.total_cmp(&b.x)));
    let mut lines: Vec<Line> = Vec::new();
    for g in glyphs {
        match lines.last_mut() {
            Some(line) if (g.y - line.y).abs() <= 0.3 * line.size.max(g.size) => {
                line.size = line.size.max(g.size);
                line.glyphs.push(g);
            }
            _ => lines.push(Line { y: g.y, size: g.size, glyphs: vec![g] }),
        }
    }
    for line in &mut lines {
        line.glyphs.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    lines.retain(|l| l.glyphs.iter().any(|g| !g.text.trim().is_empty()));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line of text set in a monospaced font of size 10 (each character 6 wide), words at the given x.
    fn line(words: &[(f64, &str)]) -> Line {
        line_at(100.0, words)
    }

    /// [`line`] on the baseline `y`.
    fn line_at(y: f64, words: &[(f64, &str)]) -> Line {
        let mut glyphs = Vec::new();
        for (x, word) in words {
            for (i, c) in word.chars().enumerate() {
                let x = x + 6.0 * i as f64;
                glyphs.push(Glyph { x, end: x + 6.0, y, size: 10.0, text: c.to_string() });
            }
        }
        Line { y, size: 10.0, glyphs }
    }

    #[test]
    fn a_header_whose_names_wrap_is_read_over_its_lines() {
        // Names wrapped over two lines, those of one line centred between them (three baselines), a title above.
        let page = [
            line_at(80.0, &[(0.0, "Liste der Personen")]),
            line_at(100.0, &[(0.0, "Lfd."), (140.0, "Geburts-"), (260.0, "Ankunft")]),
            line_at(105.0, &[(51.0, "Familienname"), (200.0, "Bemerkung")]),
            line_at(110.0, &[(0.0, "Nr."), (140.0, "datum"), (260.0, "AfA")]),
            line_at(122.0, &[(0.0, "1"), (51.0, "Haddad"), (140.0, "01.02.1990"), (260.0, "03.04.2024")]),
        ];
        let known: Vec<String> = ["lfd. nr.", "familienname", "geburtsdatum", "ankunft afa"].map(String::from).to_vec();
        let header = Header::find(&page, &known, &known).expect("the header over three lines");
        assert_eq!((header.at, header.lines), (1, 3));
        let cells: Vec<(f64, &str)> = header.cells.iter().map(|c| (c.x, c.text.as_str())).collect();
        let want = [
            (0.0, "Lfd. Nr."),
            (51.0, "Familienname"),
            (140.0, "Geburtsdatum"),
            (200.0, "Bemerkung"),
            (260.0, "Ankunft AfA"),
        ];
        assert_eq!(cells, want);
        let starts: Vec<f64> = header.cells.iter().map(|c| c.x).collect();
        assert_eq!(page[4].split(&starts), ["1", "Haddad", "01.02.1990", "", "03.04.2024"]);
        // Lines further apart than twice the text size are not one header.
        let apart = [line_at(100.0, &[(0.0, "Lfd.")]), line_at(125.0, &[(0.0, "Nr.")])];
        assert!(Header::find(&apart, &known[..1], &known).is_none());
    }

    #[test]
    fn header_cells_are_the_known_names_even_where_columns_nearly_touch() {
        // "Lfd. Nr." ends 3 before "Familienname": too close to tell apart by the gap alone.
        let header = line(&[(0.0, "Lfd. Nr."), (51.0, "Familienname"), (140.0, "Bemerkung intern"), (260.0, "Alter")]);
        let known: Vec<String> = ["lfd. nr.", "familienname", "alter"].map(String::from).to_vec();
        let cells: Vec<(f64, String)> = header.cells(&known).into_iter().map(|c| (c.x, c.text)).collect();
        let want = [(0.0, "Lfd. Nr."), (51.0, "Familienname"), (140.0, "Bemerkung intern"), (260.0, "Alter")];
        assert_eq!(cells, want.map(|(x, t)| (x, t.to_owned())), "an unknown column stays a cell of its own");
        let page = [header];
        assert!(Header::find(&page, &known, &known).is_some_and(|h| (h.at, h.lines) == (0, 1)));
        assert!(Header::find(&page, &["vorname".to_owned()], &known).is_none());

        // A data line: every word to the column that starts left of it.
        let data = line(&[(0.0, "12"), (51.0, "García"), (93.0, "Márquez"), (260.0, "34")]);
        assert_eq!(data.split(&[0.0, 51.0, 140.0, 260.0]), ["12", "García Márquez", "", "34"]);
    }

    #[test]
    fn wrapped_cells_join_and_lines_know_their_page() {
        let mut cell = "Müller-".to_owned();
        join(&mut cell, "Lüdenscheidt");
        assert_eq!(cell, "Müller-Lüdenscheidt");
        let mut cell = "Russische".to_owned();
        join(&mut cell, "Föderation");
        assert_eq!(cell, "Russische Föderation");
        let table =
            Table { header: Vec::new(), rows: Vec::new(), skipped: Skipped::default(), page_starts: vec![1, 29, 57] };
        assert_eq!([1, 28, 29, 56, 57, 60].map(|l| table.place(l)), [(1, 1), (1, 28), (2, 1), (2, 28), (3, 1), (3, 4)]);
    }

    #[test]
    fn what_is_not_a_whole_pdf_is_refused() {
        for (bytes, says) in [
            (&b"Lfd. Nr.;Name\n1;Haddad\n"[..], "not a PDF"),
            (&b"%PDF-1.7\n1 0 obj << >> endobj\n"[..], "cut short"),
            (&b"%PDF-1.7\nnonsense\n%%EOF\n"[..], "cannot be read"),
        ] {
            let error = glyphs("f.pdf", bytes).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains(says) || error.contains("PDF cannot be read"), "{error}");
        }
    }
}
