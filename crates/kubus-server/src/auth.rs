//! Who is asking: a token (`Authorization: Bearer …`, or the password of HTTP Basic), the session a token opened
//! for the browser tool (an HttpOnly cookie, shared by the browser's tabs), or the user the city's reverse proxy
//! names in the trusted header after single sign-on — from a configured proxy address only. No valid identity
//! answers 401; anonymous requests only where `[server] anonymous = true`, with the most restrictive role. Every
//! request under `/api` is audited (user, groups, role, client address, method, path, status) before its answer
//! leaves: a failed append answers 500 instead.

use crate::{ApiError, AppState};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use kubus::{Identity, Users};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The cookie of a browser session.
pub(crate) const SESSION_COOKIE: &str = "kubus_session";

/// How many sessions one user may hold at once (browsers, machines).
const SESSIONS_PER_USER: usize = 32;

/// How long a session lasts from its login: a working day.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(10 * 60 * 60);

/// The browser sessions, by their cookie's random id, in memory (a restart asks everyone to log in again). A
/// session holds the token that opened it, checked again on every request: a token removed ends its sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

struct Session {
    user: String,
    token: String,
    ends: Instant,
}

impl Sessions {
    /// Opens a session for `user`'s `token`; returns its id (256 random bits, hex).
    pub(crate) fn open(&self, user: &str, token: &str) -> Result<String, ApiError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no random session id: {e}")))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut open = self.open.lock().expect("the sessions lock is never held across a panic");
        let now = Instant::now();
        open.retain(|_, s| s.ends > now);
        // A user's sessions are bounded: a login beyond the limit ends that user's oldest session.
        let mine: Vec<(&String, Instant)> =
            open.iter().filter(|(_, s)| s.user == user).map(|(id, s)| (id, s.ends)).collect();
        if mine.len() >= SESSIONS_PER_USER
            && let Some(oldest) = mine.iter().min_by_key(|(_, ends)| *ends).map(|(id, _)| (*id).clone())
        {
            open.remove(&oldest);
        }
        let session = Session { user: user.to_owned(), token: token.to_owned(), ends: now + SESSION_LIFETIME };
        open.insert(id.clone(), session);
        Ok(id)
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.open.lock().expect("the sessions lock is never held across a panic").remove(id);
    }

    /// The user and token of a session that has not ended.
    fn get(&self, id: &str) -> Option<(String, String)> {
        let open = self.open.lock().expect("the sessions lock is never held across a panic");
        open.get(id).filter(|s| s.ends > Instant::now()).map(|s| (s.user.clone(), s.token.clone()))
    }
}

/// The value of the session cookie of a request, if it sends one.
pub(crate) fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// The token of a request's `Authorization` header (Bearer, or the password of Basic) and the user it names.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<(Option<String>, String)>, ApiError> {
    let Some(authorization) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let text =
        authorization.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text".into()))?;
    let (scheme, credentials) = text.split_once(' ').unwrap_or((text, ""));
    Ok(Some(match scheme.to_ascii_lowercase().as_str() {
        "bearer" => (None, credentials.trim().to_owned()),
        "basic" => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::unauthorized("the Basic credentials are not base64 of user:password".into())
                })?;
            let (user, password) = decoded.split_once(':').unwrap_or(("", decoded.as_str()));
            (Some(user.to_owned()).filter(|u| !u.is_empty()), password.to_owned())
        }
        other => {
            return Err(ApiError::unauthorized(format!("unknown authorization scheme '{other}': use Bearer or Basic")));
        }
    }))
}

/// The users file, read again whenever it changed (a token created with the CLI works at once, a removed one stops).
pub(crate) struct UserCache {
    path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

/// The users as read, and the file's modification time, length and inode then (every write of the users file
/// renames a new file into place, so its inode changes even within one tick of the clock).
struct Cached {
    stamp: Stamp,
    users: Arc<Users>,
}

type Stamp = (Option<SystemTime>, u64, u64);

/// The stamp of the users file as it is now.
fn stamp(path: &std::path::Path) -> Stamp {
    let Ok(m) = std::fs::metadata(path) else { return (None, 0, 0) };
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    (m.modified().ok(), m.len(), inode)
}

impl UserCache {
    pub(crate) fn new(path: PathBuf) -> UserCache {
        UserCache { path, cached: Mutex::new(None) }
    }

    /// The users as the file holds them now.
    pub(crate) fn get(&self, project: &kubus::Project) -> Result<Arc<Users>, ApiError> {
        let stamp = stamp(&self.path);
        let mut cached = self.cached.lock().expect("the users cache is never held across a panic");
        if let Some(c) = cached.as_ref()
            && c.stamp == stamp
            && stamp.0.is_some()
        {
            return Ok(c.users.clone());
        }
        let users = Arc::new(project.users().map_err(|e| ApiError::internal(kubus::error_chain(&e)))?);
        *cached = Some(Cached { stamp, users: users.clone() });
        Ok(users)
    }
}

/// Whether a request reached the city's reverse proxy over HTTPS: `X-Forwarded-Proto: https` from a configured
/// proxy. A session's cookie is then `Secure`, never sent over plain HTTP.
pub(crate) fn over_https(state: &AppState, headers: &HeaderMap, peer: IpAddr) -> bool {
    let forwarded = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"));
    forwarded && trusted(&state.project.config().server.trusted_proxies, peer)
}

/// Whether `peer` is one of the configured proxies (an IPv4 address also as IPv6-mapped).
fn trusted(proxies: &[String], peer: IpAddr) -> bool {
    let peer = peer.to_canonical();
    proxies.iter().filter_map(|p| p.parse::<IpAddr>().ok()).any(|p| p.to_canonical() == peer)
}

/// How a request said who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// The Authorization header, the proxy's trusted header, or nothing (anonymous).
    Request,
    /// A browser session's cookie, which the browser sends by itself.
    Cookie,
}

/// The identity of a request and how it was given, or why it has none.
fn identify(state: &AppState, headers: &HeaderMap, peer: IpAddr) -> Result<(Identity, Via), ApiError> {
    let project = &state.project;
    let settings = &project.config().server;
    if let Some(name) = &settings.trusted_header
        && let Some(value) = headers.get(name.as_str())
    {
        if !trusted(&settings.trusted_proxies, peer) {
            return Err(ApiError::unauthorized(format!(
                "{name} is accepted only from the proxies in [server] trusted_proxies, not from {peer}"
            )));
        }
        let user = value.to_str().map_err(|_| ApiError::unauthorized(format!("{name} is not text")))?.trim();
        let users = state.users.get(project)?;
        let Some(found) = users.get(user) else {
            return Err(ApiError::unauthorized(format!("{user} is not a user of this service")));
        };
        return Ok((project.identity(user, found)?, Via::Request));
    }
    let ((claimed, token), via) = match (bearer(headers)?, session_id(headers)) {
        (Some(credentials), _) => (credentials, Via::Request),
        (None, Some(id)) => {
            let Some((user, token)) = state.sessions.get(id) else {
                return Err(ApiError::unauthorized("the session has ended: log in again".into()));
            };
            ((Some(user), token), Via::Cookie)
        }
        (None, None) if settings.anonymous => return Ok((Identity::default(), Via::Request)),
        (None, None) => {
            return Err(ApiError::unauthorized(
                "no credentials: send a token as `Authorization: Bearer <token>` or as the password of HTTP Basic"
                    .into(),
            ));
        }
    };
    let users = state.users.get(project)?;
    let Some((name, user)) = users.by_token(&token) else {
        return Err(ApiError::unauthorized("the token is not valid".into()));
    };
    if claimed.as_deref().is_some_and(|c| c != name) {
        return Err(ApiError::unauthorized("the token belongs to another user than the one named".into()));
    }
    Ok((project.identity(name, user)?, via))
}

/// Authenticates every request under `/api`, hands its identity to the handlers, and audits it.
pub(crate) async fn authenticate(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    // The URI as sent (under `/api/v1`, which the nested router strips from `request.uri()`).
    let uri =
        request.extensions().get::<axum::extract::OriginalUri>().map_or_else(|| request.uri().clone(), |o| o.0.clone());
    let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.to_string());
    // A page's script (the explorer) asks for its own login: no challenge, or the browser would pop up its dialog.
    let script = request.headers().contains_key("x-requested-with");
    // A cookie goes with every request the browser makes to the server, also one another site's page starts: a
    // session changes nothing for a request the browser tool did not send (a form posted from elsewhere cannot set
    // a header, and no other origin may script this one).
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let identity = identify(&state, request.headers(), peer.ip()).and_then(|(identity, via)| match via {
        Via::Cookie if changes && !script => Err(ApiError::forbidden(
            "a request by a browser session that changes something must come from the browser tool".into(),
        )),
        _ => Ok(identity),
    });
    let mut response = match &identity {
        Ok(identity) => {
            request.extensions_mut().insert(identity.clone());
            next.run(request).await
        }
        Err(e) => e.clone().into_response(),
    };
    if script {
        response.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    let who = identity.as_ref().ok().cloned().unwrap_or_default();
    let status = response.status().as_u16();
    tracing::info!(%method, %path, status, user = who.user.as_deref().unwrap_or("-"), client = %peer.ip(), "request");
    let entry = serde_json::json!({
        "kind": "request",
        "user": who.user,
        "groups": who.groups,
        "role": who.role,
        "client": peer.ip().to_string(),
        "method": method,
        "path": path,
        "status": status,
    });
    match state.project.audit_entry(entry) {
        Ok(()) => response,
        Err(e) => {
            tracing::error!(error = %kubus::error_chain(&e), "audit log");
            ApiError::internal("the audit log cannot be written, so nothing is answered".into()).into_response()
        }
    }
}
