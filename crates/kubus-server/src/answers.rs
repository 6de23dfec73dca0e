//! Answers kept to be given again. An answer depends on the question, the caller's role, the options, the format
//! and the versions of the cubes it reads — nothing else (the cell key method's noise is a function of the cells,
//! suppression of the answer): the same again, at the same versions, is the same answer, so it is sent from memory
//! without a query slot. A commit to a cube it reads changes the versions, and with them the key. Every answer
//! given again is recorded in the audit log as a query, like its first asking. Bounded by `[server]
//! answer_cache_mb`; 0 computes every answer.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kubus::output::Format;
use kubus::{AnswerRecord, Query, QueryOptions};
use std::sync::Arc;

/// The kept answers, by [`key`].
pub(crate) type Answers = quick_cache::sync::Cache<String, Arc<Kept>, Weight>;

/// A typical answer's size, for the cache's estimate of how many it holds.
const TYPICAL_BYTES: u64 = 16 << 10;

/// The cache for `bytes` of answers, none for 0.
pub(crate) fn answers(bytes: u64) -> Option<Answers> {
    (bytes > 0).then(|| {
        let items = usize::try_from(bytes / TYPICAL_BYTES).unwrap_or(usize::MAX).max(16);
        Answers::with_weighter(items, bytes, Weight)
    })
}

/// The key of an answer: everything it depends on (the options whole: role, version, rollups and any other).
pub(crate) fn key(query: &Query, options: &QueryOptions, format: Format, versions: &[(String, Option<u64>)]) -> String {
    serde_json::json!([format!("{options:?}"), query, format.name(), versions]).to_string()
}

/// An answer as sent, and what the audit log records of it.
pub(crate) struct Kept {
    pub(crate) body: Bytes,
    pub(crate) format: Format,
    /// `Content-Disposition`.
    pub(crate) disposition: HeaderValue,
    /// `Kubus-Versions`: the version each cube was read at.
    pub(crate) versions: HeaderValue,
    /// `Kubus-Protection`: how the numbers are protected.
    pub(crate) protection: HeaderValue,
    pub(crate) record: AnswerRecord,
}

impl Kept {
    /// The answer as a response.
    pub(crate) fn response(&self) -> Response {
        let mut response = self.body.clone().into_response();
        let out = response.headers_mut();
        out.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.format.media_type()));
        out.insert(header::CONTENT_DISPOSITION, self.disposition.clone());
        out.insert("kubus-versions", self.versions.clone());
        out.insert("kubus-protection", self.protection.clone());
        response
    }
}

/// An answer weighs its bytes and its key's.
#[derive(Clone)]
pub(crate) struct Weight;

impl quick_cache::Weighter<String, Arc<Kept>> for Weight {
    fn weight(&self, key: &String, kept: &Arc<Kept>) -> u64 {
        (key.len() + kept.body.len() + kept.record.notes.iter().map(String::len).sum::<usize>()) as u64
    }
}
