//! Text decoding: BOM first, then the declared encoding (checked against the bytes), or detection (strict
//! UTF-8, then chardetng). A file that is plainly in another encoding than declared is refused with the
//! encoding it looks like, rather than decoded into mojibake.

use crate::error::{Error, Result};
use encoding_rs::{DecoderResult, Encoding, UTF_8};
use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// How many bytes at the start of a file decide its encoding (and are checked against a declaration).
pub const SNIFF_BYTES: usize = 1 << 20;

/// Chooses the encoding from the start of a file (`complete`: `head` is the whole file): a BOM wins, then the
/// declared encoding checked against the bytes, else strict UTF-8, else detection. Returns the encoding and
/// the length of the BOM to skip. The rest of the file is checked while it is decoded ([`DecodeReader`]).
pub fn sniff(declared: Option<&str>, file: &str, head: &[u8], complete: bool) -> Result<(&'static Encoding, usize)> {
    if let Some((enc, bom_len)) = Encoding::for_bom(head) {
        return Ok((enc, bom_len));
    }
    // Valid UTF-8, allowing a character cut off at the end of an incomplete head.
    let utf8 = match std::str::from_utf8(head) {
        Ok(text) => Ok(!text.is_ascii()),
        Err(e) if e.error_len().is_none() && !complete => Ok(true),
        Err(e) => Err(e.valid_up_to()),
    };
    match declared.and_then(|label| Encoding::for_label(label.as_bytes())) {
        Some(enc) if enc == UTF_8 => match utf8 {
            Ok(_) => Ok((UTF_8, 0)),
            Err(at) => {
                let line = line_at(head, at);
                Err(encoding_error(
                    file,
                    "UTF-8",
                    &format!("is not valid UTF-8 (first bad byte on line {line})"),
                    detect(head),
                ))
            }
        },
        // A single-byte declaration decodes anything, so look for the tell-tale of UTF-8 instead.
        Some(enc) if utf8 == Ok(true) => Err(encoding_error(
            file,
            enc.name(),
            "is valid UTF-8 with non-ASCII characters (umlauts would turn into mojibake)",
            UTF_8,
        )),
        Some(enc) => Ok((enc, 0)),
        None if utf8.is_ok() => Ok((UTF_8, 0)),
        None => Ok((detect(head), 0)),
    }
}

#[cfg(test)]
/// Decodes a whole file in memory (tests and small inputs); returns the text and the encoding's name.
pub fn decode(declared: Option<&str>, file: &str, bytes: &[u8]) -> Result<(String, &'static str)> {
    let (enc, bom) = sniff(declared, file, bytes, true)?;
    let failure = Rc::new(RefCell::new(None));
    let mut reader = DecodeReader::new(&bytes[bom..], enc, file, failure.clone());
    let mut text = String::new();
    match reader.read_to_string(&mut text) {
        Ok(_) => Ok((text, enc.name())),
        Err(e) => Err(failure.borrow_mut().take().unwrap_or(Error::Read { file: file.to_owned(), source: e })),
    }
}

/// The line breaks in `bytes`: each `\n`, and each `\r` that no `\n` follows (a line of an old Mac export, which
/// the CSV parser ends a record at as well); `\r\n` is one.
pub fn line_breaks(bytes: &[u8]) -> usize {
    let returns = memchr::memchr_iter(b'\r', bytes).filter(|&i| bytes.get(i + 1) != Some(&b'\n')).count();
    memchr::memchr_iter(b'\n', bytes).count() + returns
}

/// A reader that decodes another reader's bytes into UTF-8 as they come. Bytes invalid in the encoding and
/// characters destroyed before export (U+FFFD) stop it; the typed error is left in `failure`, and the reader
/// returns an I/O error.
pub struct DecodeReader<R> {
    inner: R,
    encoding: &'static Encoding,
    decoder: encoding_rs::Decoder,
    file: String,
    input: Vec<u8>,
    in_start: usize,
    in_end: usize,
    eof: bool,
    output: Vec<u8>,
    out_start: usize,
    out_end: usize,
    finished: bool,
    /// Line breaks decoded so far (plus the lines before the stretch, see [`DecodeReader::starting_at`]).
    lines: usize,
    /// The text decoded so far ends with a carriage return: a line feed first in the next is the same break.
    after_return: bool,
    failure: Rc<RefCell<Option<Error>>>,
}

impl<R: Read> DecodeReader<R> {
    /// Decodes `inner` (after any BOM) from `encoding`.
    pub fn new(inner: R, encoding: &'static Encoding, file: &str, failure: Rc<RefCell<Option<Error>>>) -> Self {
        DecodeReader {
            inner,
            encoding,
            decoder: encoding.new_decoder_without_bom_handling(),
            file: file.to_owned(),
            input: vec![0; 1 << 16],
            in_start: 0,
            in_end: 0,
            eof: false,
            output: vec![0; (1 << 16) * 3 + 16],
            out_start: 0,
            out_end: 0,
            finished: false,
            lines: 0,
            after_return: false,
            failure,
        }
    }

    /// Counts lines from `line` on (the bytes are a stretch of a file that starts there), for the line numbers
    /// of errors.
    pub fn starting_at(mut self, line: usize) -> Self {
        self.lines = line - 1;
        self
    }

    fn fail(&self, error: Error) -> std::io::Error {
        let message = error.to_string();
        *self.failure.borrow_mut() = Some(error);
        std::io::Error::new(std::io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for DecodeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.out_start < self.out_end {
                let n = buf.len().min(self.out_end - self.out_start);
                buf[..n].copy_from_slice(&self.output[self.out_start..self.out_start + n]);
                self.out_start += n;
                return Ok(n);
            }
            if self.finished {
                return Ok(0);
            }
            if self.in_start == self.in_end && !self.eof {
                let n = self.inner.read(&mut self.input)?;
                (self.in_start, self.in_end, self.eof) = (0, n, n == 0);
            }
            let src = &self.input[self.in_start..self.in_end];
            let (result, read, written) =
                self.decoder.decode_to_utf8_without_replacement(src, &mut self.output, self.eof);
            self.in_start += read;
            (self.out_start, self.out_end) = (0, written);
            let out = &self.output[..written];
            // Lines end as the CSV reader ends them (see [`line_breaks`]), also where a `\r\n` falls apart.
            let continued = usize::from(self.after_return && out.first() == Some(&b'\n'));
            if let Some(pos) = memchr::memmem::find(out, "\u{FFFD}".as_bytes()) {
                let line = self.lines + line_breaks(&out[..pos]) - continued + 1;
                return Err(self.fail(Error::DestroyedCharacters { file: self.file.clone(), line }));
            }
            // The decoder stops at a malformed byte: the text before it is out, and its line is the next.
            self.lines += line_breaks(out) - continued;
            if !out.is_empty() {
                self.after_return = out.last() == Some(&b'\r');
            }
            match result {
                DecoderResult::InputEmpty if self.eof => self.finished = true,
                DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
                DecoderResult::Malformed(..) => {
                    return Err(self.fail(invalid_byte(&self.file, self.encoding, self.lines + 1)));
                }
            }
        }
    }
}

fn detect(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    // German offices: the .de TLD hint makes chardetng prefer windows-1252 among the single-byte candidates.
    detector.guess(Some(b"de"), true)
}

/// A byte on `line` that `encoding` does not have.
pub(crate) fn invalid_byte(file: &str, encoding: &'static Encoding, line: usize) -> Error {
    let suggested = if encoding == UTF_8 { encoding_rs::WINDOWS_1252 } else { UTF_8 };
    encoding_error(file, encoding.name(), &format!("has a byte on line {line} that is not valid in it"), suggested)
}

fn encoding_error(file: &str, declared: &str, problem: &str, suggested: &'static Encoding) -> Error {
    Error::Encoding {
        file: file.to_owned(),
        declared: declared.to_owned(),
        problem: problem.to_owned(),
        suggested: suggested.name().to_lowercase(),
    }
}

fn line_at(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_declared_and_detected() {
        let bytes = b"Stadtteil;Zahl\nGr\xfcbent\xe4lchen;3\n";
        let (text, enc) = decode(Some("windows-1252"), "f.csv", bytes).unwrap();
        assert!(text.contains("Grübentälchen"));
        assert_eq!(enc, "windows-1252");
        let (text, _) = decode(None, "f.csv", bytes).unwrap();
        assert!(text.contains("Grübentälchen"));
    }

    #[test]
    fn utf8_file_declared_as_windows_1252_is_refused() {
        let err = decode(Some("windows-1252"), "f.csv", "Grübentälchen;3\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("encoding = \"utf-8\""), "{err}");
    }

    #[test]
    fn latin1_file_declared_as_utf8_is_refused_with_a_suggestion() {
        let err = decode(Some("utf-8"), "f.csv", b"a\nGr\xfcbent\xe4lchen;3\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains("windows-1252"), "{msg}");
    }

    #[test]
    fn replacement_characters_are_reported() {
        let err = decode(None, "f.csv", "a\nGr\u{FFFD}bent\n".as_bytes()).unwrap_err();
        assert!(matches!(err, Error::DestroyedCharacters { line: 2, .. }), "{err}");
    }

    /// Decodes as a CSV reader does: the encoding is chosen from the head, the rest is checked as it streams.
    fn streamed(declared: Option<&str>, bytes: &[u8]) -> Result<usize> {
        let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
        let (enc, bom) = sniff(declared, "f.csv", head, head.len() == bytes.len())?;
        let failure = Rc::new(RefCell::new(None));
        let mut reader = DecodeReader::new(&bytes[bom..], enc, "f.csv", failure.clone());
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Read { file: "f.csv".into(), source: e }))
    }

    #[test]
    fn a_bad_byte_after_the_sniffed_head_is_found_while_streaming() {
        let mut bytes = "a;b\n".repeat(SNIFF_BYTES / 4 + 10).into_bytes();
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        bytes.extend_from_slice(b"Gr\xfcbent\xe4lchen;3\n");
        for declared in [Some("utf-8"), None] {
            let err = streamed(declared, &bytes).map(|_| ()).unwrap_err();
            assert!(err.to_string().contains(&format!("line {}", lines + 1)), "{declared:?}: {err}");
        }
        let mut destroyed = "a;b\n".repeat(SNIFF_BYTES / 4 + 10).into_bytes();
        destroyed.extend_from_slice("Gr\u{FFFD}bent;3\n".as_bytes());
        let err = streamed(None, &destroyed).map(|_| ()).unwrap_err();
        assert!(matches!(err, Error::DestroyedCharacters { line, .. } if line == lines + 1), "{err}");
    }

    #[test]
    fn bom_wins() {
        let (text, enc) = decode(Some("windows-1252"), "f.csv", b"\xef\xbb\xbfa;\xc3\xbc\n").unwrap();
        assert_eq!((text.as_str(), enc), ("a;ü\n", "UTF-8"));
    }
}
