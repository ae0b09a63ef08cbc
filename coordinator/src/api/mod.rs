//! The coordinator's HTTP API: the miners' status query, the leaderboard
//! (JSON and a page for people), weights, the operator's manual evaluations,
//! health, readiness and metrics, all on one port (docs/architecture.md §9).
//!
//! # Layout
//! - [`router`] builds the axum router from an [`ApiState`]; [`serve`] runs
//!   it on a listener together with the status index refresher until a
//!   shutdown token fires, then drains in-flight requests.
//! - [`error`]: [`ApiError`], the one error type, with its status mapping
//!   and the JSON body `{"error": {"code", "message", "field"?}}`.
//! - [`index`]: the in-memory status index the status query is answered
//!   from (never a Redis round trip per request); its docs say how stale an
//!   answer can be.
//! - [`routes`]: the handlers; [`types`]: the JSON bodies and their
//!   OpenAPI schemas; [`page`]: the HTML leaderboard; [`limit`]: the
//!   per-address rate limit and the body deadline; [`http_metrics`]: the
//!   HTTP metrics layer.
//! - [`server`]: the connection loop under the router: the connection cap
//!   and the header and idle timeouts (its docs have the table).
//!
//! # Routes
//! | route | who | answers from |
//! |---|---|---|
//! | `GET /v1/models/{namespace}/{name}?hotkey=&chat_template=&revision=` | miners | status index |
//! | `GET /v1/jobs/{id}` | miners | status index |
//! | `GET /v1/jobs/{id}/samples` | miners | status index; the store for a COMPLETED job's per-sample records |
//! | `GET /v1/leaderboard`, `GET /v1/weights`, `GET /` | everyone | the coordinator's view |
//! | `POST /v1/evaluations` | operators (bearer token) | store + queue |
//! | `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` | probes, Prometheus, tools | — |
//!
//! The probes and metrics are also served alone on the admin port
//! ([`serve_admin`], `--admin-listen`), whose connection cap is its own.
//!
//! The public routes (`/v1/...` and `/`) are rate limited per client
//! address ([`ApiSettings::rate_limit`]); probes, metrics and the OpenAPI
//! document are not. Bodies are limited to [`ApiSettings::body_limit`]
//! bytes, arriving within [`ApiSettings::body_timeout`], and query strings
//! to [`routes::MAX_QUERY_BYTES`]. Connections are capped and timed out
//! ([`server`]).

pub mod error;
pub mod http_metrics;
pub mod index;
pub mod limit;
pub mod page;
pub mod routes;
pub mod server;
pub mod types;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use common::queue::JobQueue;
use common::store::ResultStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;
use utoipa::OpenApi;

pub use self::error::{ApiError, ErrorBody};
use self::index::{IndexHandle, Refresher, StatusIndex};
pub use self::limit::{RateLimit, RateLimiter};
pub use self::server::ConnectionLimits;
use crate::reconcile::{ReconcileSettings, Reconciler};
use crate::view::SharedView;

/// The operator token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorToken(String);

impl OperatorToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

/// Settings of the API.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where `coordinator run` listens.
    pub listen: SocketAddr,
    /// `None`: `POST /v1/evaluations` answers 403.
    pub operator_token: Option<OperatorToken>,
    /// `None`: no rate limit.
    pub rate_limit: Option<RateLimit>,
    /// How often the status index is rebuilt from the store.
    pub refresh_interval: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// `/readyz` fails when the chain has not been read for this long.
    pub chain_stale_after: Duration,
    /// Time a request body has to arrive in full (408 after it).
    pub body_timeout: Duration,
    /// Connection cap and timeouts of the server ([`server`]).
    pub connections: ConnectionLimits,
    /// Where `coordinator run` also serves the probes and metrics alone
    /// ([`serve_admin`]), out of reach of the public port's connection cap.
    pub admin_listen: Option<SocketAddr>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            operator_token: None,
            rate_limit: Some(RateLimit {
                per_second: 10.0,
                burst: 40,
            }),
            refresh_interval: Duration::from_secs(1),
            body_limit: 16 * 1024,
            chain_stale_after: Duration::from_secs(120),
            // 16 KiB arrives in well under a second on any real link.
            body_timeout: Duration::from_secs(10),
            connections: ConnectionLimits {
                max_connections: 1024,
                header_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(30),
            },
            admin_listen: None,
        }
    }
}

/// Connections the admin port serves at once: probes and a scraper or two.
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct ApiState(Arc<Inner>);

// Clone shares what is shared (store, queue, view, index); only used to
// build a variant of a state before it serves.
#[derive(Clone)]
struct Inner {
    store: Arc<dyn ResultStore>,
    queue: Arc<dyn JobQueue>,
    view: SharedView,
    index: IndexHandle,
    profile_version: String,
    dry_run: bool,
    settings: ApiSettings,
    limiter: Option<Arc<RateLimiter>>,
    reconciler: Reconciler,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("profile_version", &self.0.profile_version)
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    pub fn new(
        store: Arc<dyn ResultStore>,
        queue: Arc<dyn JobQueue>,
        view: SharedView,
        profile_version: impl Into<String>,
        dry_run: bool,
        settings: ApiSettings,
    ) -> Self {
        let limiter = settings.rate_limit.map(|l| Arc::new(RateLimiter::new(l)));
        let reconciler =
            Reconciler::new(store.clone(), queue.clone(), ReconcileSettings::default());
        Self(Arc::new(Inner {
            store,
            queue,
            view,
            index: IndexHandle::default(),
            profile_version: profile_version.into(),
            dry_run,
            settings,
            limiter,
            reconciler,
        }))
    }

    /// Replaces the settings of the reconciler the operator route publishes
    /// through (the default is [`ReconcileSettings::default`]).
    pub fn with_reconcile_settings(self, settings: ReconcileSettings) -> Self {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone());
        let reconciler = Reconciler::new(inner.store.clone(), inner.queue.clone(), settings);
        Self(Arc::new(Inner {
            reconciler,
            ..inner
        }))
    }

    /// The reconciler the operator route publishes through (the same
    /// lifecycle owner as the chain loop's, see [`crate::reconcile`]).
    pub fn reconciler(&self) -> &Reconciler {
        &self.0.reconciler
    }

    pub fn store(&self) -> Arc<dyn ResultStore> {
        self.0.store.clone()
    }

    pub fn queue(&self) -> Arc<dyn JobQueue> {
        self.0.queue.clone()
    }

    pub fn view(&self) -> &SharedView {
        &self.0.view
    }

    pub fn index(&self) -> Arc<StatusIndex> {
        self.0.index.load()
    }

    pub fn profile_version(&self) -> &str {
        &self.0.profile_version
    }

    pub fn dry_run(&self) -> bool {
        self.0.dry_run
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.0.settings
    }

    fn operator_token(&self) -> Option<&OperatorToken> {
        self.0.settings.operator_token.as_ref()
    }

    fn chain_stale_after(&self) -> Duration {
        self.0.settings.chain_stale_after
    }

    /// The refresher of this state's status index.
    pub fn refresher(&self) -> Refresher {
        Refresher::new(self.store(), self.0.view.clone(), self.0.index.clone())
    }

    /// Rebuilds the status index now (tests; `serve` refreshes on its own).
    pub async fn refresh_index(&self) -> Result<(), common::store::StoreError> {
        self.refresher().refresh().await
    }
}

/// The route patterns, as the `route` label of the HTTP metrics.
pub const ROUTES: &[&str] = &[
    "/",
    "/v1/models/{namespace}/{name}",
    "/v1/jobs/{id}",
    "/v1/jobs/{id}/samples",
    "/v1/leaderboard",
    "/v1/weights",
    "/v1/evaluations",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    http_metrics::UNMATCHED,
];

/// The OpenAPI document, generated from the handlers and types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roleplay LLM evaluation: coordinator API",
        description = "Miner status, leaderboard and weights of a validator's evaluation cluster; \
                       operators queue models by hand with a bearer token. Any route may also \
                       answer 503 (`too_many_connections`, with `Retry-After`) when the server \
                       is at its connection limit; connections that send no complete request \
                       head in time are closed without an answer."
    ),
    paths(
        routes::model_status,
        routes::job_status,
        routes::job_samples,
        routes::leaderboard,
        routes::weights,
        routes::create_evaluation,
        routes::page,
        routes::healthz,
        routes::readyz,
        routes::metrics,
        routes::openapi,
    ),
    modifiers(&OperatorAuth)
)]
#[derive(Debug)]
pub struct ApiDoc;

#[derive(Debug)]
struct OperatorAuth;

impl utoipa::Modify for OperatorAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "operator_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document as JSON, built once.
pub fn openapi_json() -> Bytes {
    static JSON: LazyLock<Bytes> = LazyLock::new(|| {
        Bytes::from(
            ApiDoc::openapi()
                .to_pretty_json()
                .expect("the OpenAPI document serialises"),
        )
    });
    JSON.clone()
}

/// The router: every route with its layers.
pub fn router(state: ApiState) -> Router {
    let body_limit = state.settings().body_limit;
    let public = Router::new()
        .route("/", get(routes::page))
        .route("/v1/models/{namespace}/{name}", get(routes::model_status))
        .route("/v1/jobs/{id}", get(routes::job_status))
        .route("/v1/jobs/{id}/samples", get(routes::job_samples))
        .route("/v1/leaderboard", get(routes::leaderboard))
        .route("/v1/weights", get(routes::weights))
        .route(
            "/v1/evaluations",
            post(routes::create_evaluation)
                .layer(DefaultBodyLimit::max(body_limit))
                .layer(axum::middleware::from_fn_with_state(
                    limit::BodyLimits {
                        max_bytes: body_limit,
                        timeout: state.settings().body_timeout,
                    },
                    limit::read_body,
                )),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.0.limiter.clone(),
            limit::rate_limit,
        ));
    let operations = probes_and_metrics().route("/openapi.json", get(routes::openapi));
    public
        .merge(operations)
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
        .layer(axum::middleware::from_fn(http_metrics::http_metrics))
}

/// `/healthz`, `/readyz` and `/metrics`: what the admin port serves.
fn probes_and_metrics() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
}

/// The admin router: probes and metrics only.
pub fn admin_router(state: ApiState) -> Router {
    probes_and_metrics()
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::wrong_method)
        .with_state(state)
        .layer(axum::middleware::from_fn(http_metrics::http_metrics))
}

/// Serves the probes and metrics alone on `listener` (the admin port) until
/// `shutdown`, with a connection cap of its own
/// ([`ADMIN_MAX_CONNECTIONS`]): a flood of clients on the public port
/// cannot make the liveness probe fail and the pod restart.
pub async fn serve_admin(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    info!(addr = %addr, "admin listening");
    let limits = ConnectionLimits {
        max_connections: ADMIN_MAX_CONNECTIONS,
        ..state.settings().connections
    };
    server::serve(listener, admin_router(state), limits, shutdown).await
}

/// Serves the API on `listener` until `shutdown`, then stops taking
/// connections and waits for in-flight requests. Also runs the status index
/// refresher, and registers every metric so each is on `/metrics` at once.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    crate::metrics::init(ROUTES);
    let addr = listener.local_addr()?;
    info!(addr = %addr, "http api listening");
    let refresher = tokio::spawn(
        state
            .refresher()
            .run(state.settings().refresh_interval, shutdown.clone()),
    );
    let limits = state.settings().connections;
    let served = server::serve(listener, router(state), limits, shutdown).await;
    refresher.abort();
    info!("http api stopped");
    served
}
