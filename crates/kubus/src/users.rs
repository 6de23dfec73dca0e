//! The users of `kubus serve`: names, their groups, and the SHA-256 of their tokens, kept in the project's users file
//! (`[server] users`, default `users.toml`). A token is shown once, when it is created; only its hash is stored, so
//! the file (readable by the service's user only) does not let anyone ask as someone else. Groups map to roles in
//! `kubus.toml` (`[groups]`): the identity, not the asker, decides the role.

use crate::{Error, Project, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The prefix of every token, so that a leaked one is recognised (by secret scanners too).
const TOKEN_PREFIX: &str = "kubus_";

/// One user: the groups it belongs to and its tokens' hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user's groups (`[groups]` of `kubus.toml`).
    pub groups: Vec<String>,
    /// The user's tokens (hashes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<TokenRecord>,
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// The first characters of the token's hash, to name it (for revoking) without revealing it.
    pub id: String,
    /// SHA-256 of the token, hex. Tokens are 256 random bits, so a plain hash suffices (no password stretching).
    pub sha256: String,
    /// When it was created (RFC 3339).
    pub created: String,
}

/// The users file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Users by name.
    #[serde(default)]
    pub users: BTreeMap<String, User>,
}

/// The SHA-256 of a token, hex.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `name` may name a user: what a reverse proxy sends after single sign-on (`anna.becker`,
/// `abecker@kaiserslautern.de`, `KL\abecker`), nothing that could break a log line or a header.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '\\'))
}

impl Users {
    /// The user a token belongs to.
    pub fn by_token(&self, token: &str) -> Option<(&str, &User)> {
        let token = token.trim();
        if !token.starts_with(TOKEN_PREFIX) {
            return None;
        }
        let hash = token_hash(token);
        self.users.iter().find(|(_, u)| u.tokens.iter().any(|t| t.sha256 == hash)).map(|(n, u)| (n.as_str(), u))
    }

    /// A user by name.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }
}

/// Who asks through the server, and so which role answers: a user's groups decide, never the request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The user (`None`: anonymous, where the server allows it).
    pub user: Option<String>,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The role its groups act as (`None`: the most restrictive default).
    pub role: Option<String>,
}

impl Project {
    /// A user's identity: the role its groups act as. A user without groups gets the most restrictive default; a
    /// user whose groups act as different roles is refused (which one would be a guess).
    pub fn identity(&self, name: &str, user: &User) -> Result<Identity> {
        let mut roles: Vec<&str> = Vec::new();
        for g in &user.groups {
            let role = self.config().group(g)?.role.as_str();
            if !roles.contains(&role) {
                roles.push(role);
            }
        }
        if roles.len() > 1 {
            return Err(Error::Refused {
                role: roles.join(", "),
                rule: format!(
                    "user {name} is in groups that act as different roles ({}); give a user groups of one role",
                    roles.join(", ")
                ),
            });
        }
        Ok(Identity {
            user: Some(name.to_owned()),
            groups: user.groups.clone(),
            role: roles.first().map(|r| (*r).to_owned()),
        })
    }

    /// Whether an identity may upload files to a source: one of its groups must list the source under `ingest`.
    pub fn check_upload(&self, identity: &Identity, source: &str) -> Result<()> {
        self.model().source(source)?;
        let allowed = identity
            .groups
            .iter()
            .filter_map(|g| self.config().group(g).ok())
            .any(|g| g.ingest.iter().any(|s| s == source));
        if allowed {
            return Ok(());
        }
        Err(Error::Refused {
            role: identity.role.clone().unwrap_or_else(|| "(none)".into()),
            rule: format!(
                "uploads to source {source} are for the groups that list it under `ingest` in kubus.toml [groups], \
                 and {} is in none of them",
                identity.user.as_deref().unwrap_or("an anonymous caller")
            ),
        })
    }

    /// The users file.
    pub fn users_path(&self) -> PathBuf {
        self.root().join(&self.config().server.users)
    }

    /// The users of `kubus serve` (none before the first `kubus user add`).
    pub fn users(&self) -> Result<Users> {
        read_users(&self.users_path())
    }

    /// Adds a user with its groups (each must be a group of `kubus.toml`, all of them acting as one role).
    pub fn add_user(&self, name: &str, groups: &[String]) -> Result<()> {
        if !valid_name(name) {
            return Err(Error::Users {
                path: self.users_path(),
                reason: format!(
                    "'{name}' cannot name a user: letters, digits and . _ - @ \\ only (as a single sign-on sends it)"
                ),
            });
        }
        for g in groups {
            self.config().group(g)?;
        }
        let mut users = self.users()?;
        if users.users.contains_key(name) {
            return Err(Error::Users { path: self.users_path(), reason: format!("user {name} exists already") });
        }
        let user = User { groups: groups.to_vec(), tokens: Vec::new() };
        // Groups of different roles are refused now, not at the user's first request.
        self.identity(name, &user)?;
        users.users.insert(name.to_owned(), user);
        write_users(&self.users_path(), &users)
    }

    /// Creates a token for a user and returns it: the only time it is shown (the file keeps its hash).
    pub fn create_token(&self, name: &str) -> Result<String> {
        let mut users = self.users()?;
        let path = self.users_path();
        let Some(user) = users.users.get_mut(name) else {
            return Err(Error::Users { path, reason: format!("no user {name}; add it with `kubus user add {name}`") });
        };
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::Users { path: path.clone(), reason: format!("no random numbers: {e}") })?;
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let sha256 = token_hash(&token);
        user.tokens.push(TokenRecord {
            id: sha256[..8].to_owned(),
            sha256,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        write_users(&path, &users)?;
        Ok(token)
    }
}

impl Project {
    /// Revokes a user's token by its id (as `kubus user list` and the users file show it): a running server refuses
    /// it from its next request on.
    pub fn revoke_token(&self, name: &str, id: &str) -> Result<()> {
        let path = self.users_path();
        let mut users = self.users()?;
        let Some(user) = users.users.get_mut(name) else {
            return Err(Error::Users { path, reason: format!("no user {name}") });
        };
        let before = user.tokens.len();
        user.tokens.retain(|t| t.id != id);
        if user.tokens.len() == before {
            let ids: Vec<&str> = user.tokens.iter().map(|t| t.id.as_str()).collect();
            let reason = format!("user {name} has no token {id} (its tokens: {})", ids.join(", "));
            return Err(Error::Users { path, reason });
        }
        write_users(&path, &users)
    }

    /// Removes a user and its tokens.
    pub fn remove_user(&self, name: &str) -> Result<()> {
        let path = self.users_path();
        let mut users = self.users()?;
        if users.users.remove(name).is_none() {
            return Err(Error::Users { path, reason: format!("no user {name}") });
        }
        write_users(&path, &users)
    }
}

/// Reads a users file; a missing one holds no users.
pub(crate) fn read_users(path: &Path) -> Result<Users> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
        Err(e) => return Err(Error::Users { path: path.to_owned(), reason: e.to_string() }),
    };
    toml::from_str(&text).map_err(|e| Error::Users { path: path.to_owned(), reason: e.message().to_owned() })
}

/// Writes the users file whole (a new file renamed over the old, so a reader never sees half of it), readable by
/// its owner only.
fn write_users(path: &Path, users: &Users) -> Result<()> {
    let fail = |reason: String| Error::Users { path: path.to_owned(), reason };
    let text = format!(
        "# The users of `kubus serve`, their groups and the SHA-256 of their tokens. Written by `kubus user` and\n\
         # `kubus token`; a token is shown once when it is created and is not in this file.\n{}",
        toml::to_string(users).map_err(|e| fail(e.to_string()))?
    );
    let partial = path.with_extension("toml.partial");
    let mut options = std::fs::File::options();
    options.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = options.open(&partial)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    };
    write().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_found_by_its_hash_only() {
        let token = format!("{TOKEN_PREFIX}{}", "ab".repeat(32));
        let sha256 = token_hash(&token);
        let users = Users {
            users: BTreeMap::from([(
                "anna".to_owned(),
                User {
                    groups: vec!["jugendamt".into()],
                    tokens: vec![TokenRecord { id: sha256[..8].into(), sha256, created: String::new() }],
                },
            )]),
        };
        assert_eq!(users.by_token(&token).map(|(n, _)| n), Some("anna"));
        assert_eq!(users.by_token(&format!(" {token}\n")).map(|(n, _)| n), Some("anna"));
        assert!(users.by_token(&token[..token.len() - 1]).is_none());
        assert!(users.by_token(&users.users["anna"].tokens[0].sha256).is_none(), "the stored hash is no token");
    }

    #[test]
    fn user_names_are_what_a_proxy_sends() {
        for ok in ["anna", "anna.becker", "abecker@kaiserslautern.de", "KL\\abecker", "jörg"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "anna becker", "a\nb", "a\"b", "a/b", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
