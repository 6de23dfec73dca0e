//! SQL over the PostgreSQL wire protocol, for roles with `sql = true`: `psql`, DBeaver and Metabase connect as they
//! would to PostgreSQL, with the user's name and a token as the password. The login decides the role; a role
//! without SQL is refused there, naming the rule. Each connection reads the views of `kubus sql` (the role's cubes,
//! with member labels), registered again before every query so that a long session sees new commits while each
//! query reads one version. Only queries run: DataFusion would otherwise create tables, read or write files. Every
//! login and statement is in the audit log with user, groups, role and client address; statements share the
//! server's query slots, its memory limit per query and its timeout.
//!
//! The protocol is DataFusion's own PostgreSQL front (datafusion-postgres on pgwire), with its `pg_catalog` for the
//! clients' catalog queries; kubus supplies the login, the per-connection session and the guard.

use crate::AppState;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::Sink;
use kubus::{Identity, SqlOptions};
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_USER, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A statement as datafusion-postgres parses and plans it.
type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// Accepts connections until `shutdown` turns true; each is served on a task of its own.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<AppState>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let connection = Arc::new(Connection { app: app.clone(), peer, session: OnceLock::new() });
                    tokio::spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, Handlers(connection)).await {
                            tracing::debug!(client = %peer.ip(), error = %e, "sql connection");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "sql accept"),
            },
            _ = shutdown.changed() => break,
        }
    }
}

/// One client connection: the session exists once the login succeeded.
struct Connection {
    app: Arc<AppState>,
    peer: SocketAddr,
    session: OnceLock<Arc<DfSessionService>>,
}

impl Connection {
    fn session(&self) -> PgWireResult<&Arc<DfSessionService>> {
        self.session.get().ok_or_else(|| error("FATAL", "08P01", "not logged in".into()))
    }

    /// Checks the user's token and role, audits the login, and prepares the session.
    async fn login(&self, user: &str, token: &str) -> PgWireResult<()> {
        let outcome = self.open(user, token).await;
        let (identity, status) = match &outcome {
            Ok((identity, _)) => (Some(identity), "ok".to_owned()),
            Err(e) => (None, format!("refused: {}", message(e))),
        };
        let who = identity.cloned().unwrap_or_else(|| Identity { user: Some(user.to_owned()), ..Identity::default() });
        self.audit(&who, serde_json::json!({"kind": "sql-login", "status": status}))?;
        let (identity, session) = outcome?;
        tracing::info!(user = identity.user.as_deref().unwrap_or("-"), client = %self.peer.ip(), "sql login");
        let _ = self.session.set(session);
        Ok(())
    }

    async fn open(&self, user: &str, token: &str) -> PgWireResult<(Identity, Arc<DfSessionService>)> {
        let project = &self.app.project;
        let users = self.app.users.get(project).map_err(|e| error("FATAL", "XX000", e.message))?;
        let identity = match users.by_token(token) {
            Some((name, found)) if name == user => {
                project.identity(name, found).map_err(|e| error("FATAL", "28000", kubus::error_chain(&e)))?
            }
            _ => return Err(PgWireError::InvalidPassword(user.to_owned())),
        };
        let options = SqlOptions { as_of: Vec::new(), role: identity.role.clone() };
        let ctx = project.sql_session(&options).await.map_err(|e| match &e {
            kubus::Error::Refused { role, rule } => {
                error("FATAL", "28000", format!("role {role} may not use SQL: {rule}"))
            }
            _ => error("FATAL", "XX000", kubus::error_chain(&e)),
        })?;
        setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider)
            .map_err(|e| error("FATAL", "XX000", e.to_string()))?;
        let guard = Guard { app: self.app.clone(), peer: self.peer, identity: identity.clone(), options };
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(guard),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        Ok((identity, Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks))))
    }

    fn audit(&self, who: &Identity, mut entry: serde_json::Value) -> PgWireResult<()> {
        audit(&self.app, self.peer, who, &mut entry)
    }

    /// Runs `work` in one of the server's query slots, within its timeout.
    async fn in_slot<T>(&self, work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        let _slot = self
            .app
            .slots
            .acquire()
            .await
            .map_err(|_| error("FATAL", "57P01", "the server is shutting down".into()))?;
        let limit = Duration::from_secs(self.app.project.config().server.timeout_seconds);
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(error("ERROR", "57014", format!("canceling statement: it ran longer than {} s", limit.as_secs())))
        })
    }
}

/// Appends one entry with who asked and from where; a failed append refuses the statement.
fn audit(app: &AppState, peer: SocketAddr, who: &Identity, entry: &mut serde_json::Value) -> PgWireResult<()> {
    entry["via"] = "postgres".into();
    entry["user"] = who.user.clone().into();
    entry["groups"] = who.groups.clone().into();
    entry["role"] = who.role.clone().into();
    entry["client"] = peer.ip().to_string().into();
    app.project.audit_entry(entry.take()).map_err(|e| {
        tracing::error!(error = %kubus::error_chain(&e), "audit log");
        error("ERROR", "XX000", "the audit log cannot be written, so nothing is answered".into())
    })
}

fn error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(severity.into(), code.into(), message)))
}

fn message(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => info.message.clone(),
        PgWireError::InvalidPassword(user) => format!("the token is not valid for {user}"),
        other => other.to_string(),
    }
}

/// The first hook of every statement: audits it, refuses all but queries, and registers the views again before a
/// query is planned.
struct Guard {
    app: Arc<AppState>,
    peer: SocketAddr,
    identity: Identity,
    options: SqlOptions,
}

/// What a read-only session may run besides queries: settings, transactions (nothing to commit) and cursors.
fn session_statement(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::Set(_)
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowVariables { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
    )
}

impl Guard {
    async fn admit(&self, statement: &Statement, ctx: &SessionContext) -> PgWireResult<()> {
        let outcome = self.check(statement, ctx).await;
        let status = match &outcome {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("refused: {}", message(e)),
        };
        let mut entry = serde_json::json!({"kind": "sql", "sql": statement.to_string(), "status": status});
        audit(&self.app, self.peer, &self.identity, &mut entry)?;
        outcome
    }

    async fn check(&self, statement: &Statement, ctx: &SessionContext) -> PgWireResult<()> {
        // DataFusion's own settings would lift the server's limits (`datafusion.runtime.memory_limit`).
        if matches!(statement, Statement::Set(_)) && statement.to_string().to_ascii_lowercase().contains("datafusion.")
        {
            return Err(error(
                "ERROR",
                "42501",
                "kubus SQL keeps the engine's settings (memory limit, parallelism): SET datafusion.… is refused".into(),
            ));
        }
        if session_statement(statement) {
            return Ok(());
        }
        let queries: Vec<Statement> = match statement {
            Statement::Query(_) | Statement::Explain { .. } => vec![statement.clone()],
            Statement::Declare { stmts } if stmts.iter().all(|d| d.for_query.is_some()) => {
                stmts.iter().filter_map(|d| d.for_query.clone()).map(Statement::Query).collect()
            }
            _ => return Err(read_only(statement)),
        };
        self.app
            .project
            .register_sql_views(ctx, &self.options)
            .await
            .map_err(|e| error("ERROR", "XX000", kubus::error_chain(&e)))?;
        let allowed = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        for query in queries {
            let plan = ctx
                .state()
                .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(query)))
                .await
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            allowed.verify_plan(&plan).map_err(|_| read_only(statement))?;
        }
        Ok(())
    }
}

fn read_only(statement: &Statement) -> PgWireError {
    let kind = statement.to_string().split_whitespace().next().unwrap_or_default().to_uppercase();
    error(
        "ERROR",
        "25006",
        format!("kubus SQL is read-only: it runs queries (SELECT, WITH, VALUES, EXPLAIN, SHOW), not {kind}"),
    )
}

#[async_trait]
impl QueryHook for Guard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.admit(statement, ctx).await.err().map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        self.admit(statement, ctx).await.err().map(Err)
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        // Admitted when it was parsed.
        None
    }
}

/// The handlers of one connection: its login, and the session service it prepared.
struct Handlers(Arc<Connection>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Queries(self.0.clone()))
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Queries(self.0.clone()))
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(Login(self.0.clone()))
    }
}

/// Cleartext password login: the password is a token of the user named at startup.
struct Login(Arc<Connection>);

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use futures::SinkExt as _;
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client.send(PgWireBackendMessage::Authentication(Authentication::CleartextPassword)).await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                self.0.login(&user, &password.password).await?;
                let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
                client.set_pid_and_secret_key(pid, secret);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.is_superuser = false;
                parameters.default_transaction_read_only = true;
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Statements of a logged-in connection, handed to its session service in a query slot.
struct Queries(Arc<Connection>);

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.0.session()?;
        self.0.in_slot(SimpleQueryHandler::do_query(session.as_ref(), client, query)).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = DfStatement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser(self.0.clone()))
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<DfStatement>, max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = DfStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = self.0.session()?;
        self.0.in_slot(ExtendedQueryHandler::do_query(session.as_ref(), client, portal, max_rows)).await
    }
}

/// The session service's parser, for the connection's session.
struct Parser(Arc<Connection>);

#[async_trait]
impl QueryParser for Parser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<DfStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.0.session()?.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, statement: &DfStatement) -> PgWireResult<Vec<Type>> {
        self.0.session()?.query_parser().get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &DfStatement,
        format: Option<&pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.0.session()?.query_parser().get_result_schema(statement, format)
    }
}
