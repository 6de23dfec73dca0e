//! Text decoding: BOM first, then the declared encoding (checked against the bytes), or detection (strict
//! UTF-8, then chardetng). A file that is plainly in another encoding than declared is refused with the
//! encoding it looks like, rather than decoded into mojibake.

use crate::{Error, Result};
use encoding_rs::{Encoding, UTF_8};

/// Decodes `bytes`; returns the text and the name of the encoding used.
pub fn decode(declared: Option<&str>, file: &str, bytes: &[u8]) -> Result<(String, &'static str)> {
    if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        let (text, had_errors) = enc.decode_without_bom_handling(&bytes[bom_len..]);
        if had_errors {
            return Err(encoding_error(file, enc.name(), "has bytes that are invalid after its byte-order mark", detect(bytes)));
        }
        return finish(file, text.into_owned(), enc.name());
    }
    let utf8 = std::str::from_utf8(bytes);
    match declared.and_then(|label| Encoding::for_label(label.as_bytes())) {
        Some(enc) if enc == UTF_8 => match utf8 {
            Ok(text) => finish(file, text.to_owned(), UTF_8.name()),
            Err(e) => {
                let line = line_at(bytes, e.valid_up_to());
                Err(encoding_error(file, "UTF-8", &format!("is not valid UTF-8 (first bad byte on line {line})"), detect(bytes)))
            }
        },
        Some(enc) => {
            // A single-byte declaration decodes anything, so look for the tell-tale of UTF-8 instead.
            if let Ok(text) = utf8
                && !text.is_ascii()
            {
                return Err(encoding_error(file, enc.name(), "is valid UTF-8 with non-ASCII characters (umlauts would turn into mojibake)", UTF_8));
            }
            let (text, _) = enc.decode_without_bom_handling(bytes);
            finish(file, text.into_owned(), enc.name())
        }
        None => match utf8 {
            Ok(text) => finish(file, text.to_owned(), UTF_8.name()),
            Err(_) => {
                let enc = detect(bytes);
                let (text, _) = enc.decode_without_bom_handling(bytes);
                finish(file, text.into_owned(), enc.name())
            }
        },
    }
}

fn detect(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    // German offices: the .de TLD hint makes chardetng prefer windows-1252 among the single-byte candidates.
    detector.guess(Some(b"de"), true)
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

fn finish(file: &str, text: String, encoding: &'static str) -> Result<(String, &'static str)> {
    if let Some(pos) = text.find('\u{FFFD}') {
        return Err(Error::DestroyedCharacters { file: file.to_owned(), line: line_at(text.as_bytes(), pos) });
    }
    Ok((text, encoding))
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

    #[test]
    fn bom_wins() {
        let (text, enc) = decode(Some("windows-1252"), "f.csv", b"\xef\xbb\xbfa;\xc3\xbc\n").unwrap();
        assert_eq!((text.as_str(), enc), ("a;ü\n", "UTF-8"));
    }
}
