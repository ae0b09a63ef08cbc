//! The route handlers. Each validates its input first (a 4xx naming the
//! field), then reads the status index, the view or a backend.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use common::clock::now_ms;
use common::job::{DEFAULT_REVISION, JobId, JobMessage, JobOrigin, JobStatus, ModelRef};
use common::store::Enqueued;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::info;

use crate::reconcile::{ReconcileError, ReconcileReport};

use super::index::IndexedJob;
use super::types::{
    Check, EvaluationAccepted, EvaluationRequest, Health, JobSamples, LeaderboardEntry,
    LeaderboardResponse, Model, ModelStatus, PendingSubmission, Readiness, SubmissionStatus,
    WeightVector, WeightsResponse,
};
use super::{ApiError, ApiState, ErrorBody};

/// Longest query string accepted.
pub const MAX_QUERY_BYTES: usize = 1024;
/// How long a readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of a public route to a client over its rate limit (for the
/// OpenAPI document: the limiter sends it).
#[derive(Debug, utoipa::IntoResponses)]
#[response(
    status = 429,
    description = "Too many requests from this address",
    headers(("Retry-After" = u64, description = "Seconds until a request is allowed again"))
)]
pub struct RateLimited(pub ErrorBody);

/// The `{id}` of the job routes (for the OpenAPI document).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// Job id: 32 lowercase hex digits
    #[param(min_length = 32, max_length = 32, pattern = r"^[0-9a-f]{32}$")]
    pub id: String,
}

/// The 4xx answers the job routes share (for the OpenAPI document).
#[derive(Debug, utoipa::IntoResponses)]
pub enum JobErrors {
    #[response(status = 400, description = "Not a job id")]
    NotAJobId(ErrorBody),
    #[response(status = 404, description = "No such job")]
    NoSuchJob(ErrorBody),
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Checks a repository namespace or name: 1 to 96 of `A-Z a-z 0-9 - _ .`,
/// not `.` or `..` (the hub's rules, slightly looser).
pub fn check_repo_part(field: &str, value: &str) -> Result<(), ApiError> {
    check_chars(field, value, 96, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })?;
    if value == "." || value == ".." {
        return Err(ApiError::invalid(field, "must not be `.` or `..`"));
    }
    Ok(())
}

/// Checks a chat template name: 1 to 64 of `A-Z a-z 0-9 - _ .`.
pub fn check_template(field: &str, value: &str) -> Result<(), ApiError> {
    check_chars(field, value, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
    })
}

/// Checks a revision (branch, tag or commit sha): 1 to 128 of
/// `A-Z a-z 0-9 - _ . /`, without `..`.
pub fn check_revision(field: &str, value: &str) -> Result<(), ApiError> {
    check_chars(field, value, 128, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
    })?;
    if value.contains("..") {
        return Err(ApiError::invalid(field, "must not contain `..`"));
    }
    Ok(())
}

/// Checks a hotkey: 1 to 64 ASCII letters and digits (SS58 addresses are base58).
pub fn check_hotkey(field: &str, value: &str) -> Result<(), ApiError> {
    check_chars(field, value, 64, |c| c.is_ascii_alphanumeric())
}

fn check_chars(
    field: &str,
    value: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("is {} bytes, more than {max}", value.len()),
        ));
    }
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(ApiError::invalid(
            field,
            format!("contains the character {bad:?}, which is not allowed here"),
        ));
    }
    Ok(())
}

/// The status query's parameters.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StatusQuery {
    pub hotkey: Option<String>,
    pub chat_template: Option<String>,
    pub revision: Option<String>,
}

/// Parses and checks the status query string: known keys, once each.
pub fn parse_status_query(raw: Option<&str>) -> Result<StatusQuery, ApiError> {
    let raw = raw.unwrap_or("");
    if raw.len() > MAX_QUERY_BYTES {
        return Err(ApiError::UriTooLong {
            limit: MAX_QUERY_BYTES,
        });
    }
    let mut query = StatusQuery::default();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let slot = match &*key {
            "hotkey" => &mut query.hotkey,
            "chat_template" => &mut query.chat_template,
            "revision" => &mut query.revision,
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(ApiError::invalid(
                    shown,
                    "unknown parameter (known: hotkey, chat_template, revision)",
                ));
            }
        };
        if slot.is_some() {
            return Err(ApiError::invalid(key.into_owned(), "given more than once"));
        }
        *slot = Some(value.into_owned());
    }
    if let Some(hotkey) = &query.hotkey {
        check_hotkey("hotkey", hotkey)?;
    }
    if let Some(template) = &query.chat_template {
        check_template("chat_template", template)?;
    }
    if let Some(revision) = &query.revision {
        check_revision("revision", revision)?;
    }
    Ok(query)
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::invalid("path", rejection.body_text())
}

/// The miner's status query.
#[utoipa::path(
    get,
    path = "/v1/models/{namespace}/{name}",
    tag = "miners",
    params(
        ("namespace" = String, Path, description = "Hugging Face user or organisation: 1 to 96 of `A-Z a-z 0-9 - _ .`, not `.` or `..`",
            min_length = 1, max_length = 96, pattern = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,96}$"),
        ("name" = String, Path, description = "Repository name: 1 to 96 of `A-Z a-z 0-9 - _ .`, not `.` or `..`",
            min_length = 1, max_length = 96, pattern = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,96}$"),
        ("hotkey" = Option<String>, Query, description = "The miner's hotkey (SS58, 1 to 64 letters and digits): answers INVALID with the reason when its commitment was refused",
            min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9]{1,64}$"),
        ("chat_template" = Option<String>, Query, description = "Chat template of the submission, 1 to 64 of `A-Z a-z 0-9 - _ .` [default: the most recently queued job of the repository]",
            min_length = 1, max_length = 64, pattern = r"^[A-Za-z0-9._-]{1,64}$"),
        ("revision" = Option<String>, Query, description = "Revision evaluated, 1 to 128 of `A-Z a-z 0-9 - _ . /` without `..` [default: main when chat_template is given, else any]",
            min_length = 1, max_length = 128, pattern = r"^(?!.*\.\.)[A-Za-z0-9._/-]{1,128}$"),
    ),
    responses(
        (status = 200, description = "Where the submission stands", body = ModelStatus),
        (status = 400, description = "A malformed or unknown parameter (named in `field`)", body = ErrorBody),
        (status = 404, description = "No evaluation of this model is known", body = ErrorBody),
        (status = 414, description = "Query string longer than 1024 bytes", body = ErrorBody),
        RateLimited,
        (status = 503, description = "The coordinator is starting", body = ErrorBody),
    )
)]
pub async fn model_status(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Path((namespace, name)) = path.map_err(path_error)?;
    check_repo_part("namespace", &namespace)?;
    check_repo_part("name", &name)?;
    let query = parse_status_query(raw.as_deref())?;
    let index = state.index();
    if index.built_at_ms == 0 {
        return Err(ApiError::Unavailable(
            "the coordinator is starting and has not read the job store yet; retry in a second"
                .into(),
        ));
    }
    if let Some(hotkey) = &query.hotkey
        && let Some(invalid) = index.invalid.get(hotkey)
    {
        return Ok(json_bytes(invalid.body.clone()));
    }
    let job = match &query.chat_template {
        Some(template) => {
            let model = ModelRef {
                namespace: namespace.clone(),
                name: name.clone(),
                revision: query
                    .revision
                    .clone()
                    .unwrap_or_else(|| DEFAULT_REVISION.to_owned()),
                chat_template: template.clone(),
            };
            index
                .jobs
                .get(&JobId::for_model(&model, state.profile_version()))
        }
        None => {
            let repo = format!("{}/{}", namespace.to_lowercase(), name.to_lowercase());
            index.latest_of_repo(&repo, query.revision.as_deref())
        }
    };
    if let Some(job) = job {
        return Ok(json_bytes(job.body.clone()));
    }
    let mut message = format!(
        "no evaluation of {namespace}/{name} (revision {}, chat template {}) under scoring profile {} is known",
        query.revision.as_deref().unwrap_or("any"),
        query.chat_template.as_deref().unwrap_or("any"),
        state.profile_version(),
    );
    match &query.hotkey {
        Some(hotkey) if !index.registered.contains(hotkey) => message.push_str(&format!(
            "; hotkey {hotkey} has no uid on the subnet at the coordinator's last chain read"
        )),
        _ => message.push_str(
            "; a commitment is queued after the coordinator reads it from chain (one poll interval): \
             check that it names this repository and chat template (`coordinator commit` prints the string to commit)",
        ),
    }
    Err(ApiError::NotFound(message))
}

/// One job by id.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "miners",
    params(JobPath),
    responses(
        (status = 200, description = "The job", body = ModelStatus),
        JobErrors,
        RateLimited,
        (status = 503, description = "The coordinator has not read the job store yet", body = ErrorBody),
    )
)]
pub async fn job_status(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let job = indexed_job(&state, path)?;
    Ok(json_bytes(job.body.clone()))
}

/// The job the path's `{id}` names from the status index, or the 400, 404
/// or 503 that `/v1/jobs/{id}` and its sub-routes share.
fn indexed_job(
    state: &ApiState,
    path: Result<Path<String>, PathRejection>,
) -> Result<Arc<IndexedJob>, ApiError> {
    let Path(id) = path.map_err(path_error)?;
    let id: JobId = id
        .parse()
        .map_err(|e| ApiError::invalid("id", format!("{e}")))?;
    let index = state.index();
    if index.built_at_ms == 0 {
        return Err(ApiError::Unavailable(
            "the coordinator has not read the job store yet (is Redis reachable?); retry later"
                .into(),
        ));
    }
    index
        .jobs
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no job {id} is known")))
}

/// What each sample of a job scored: the conversation, its similarity and
/// vibe, the model's reply, and whether the context was cut.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/samples",
    tag = "miners",
    params(JobPath),
    responses(
        (status = 200, description = "The job's status and, once it is COMPLETED, one record per scored sample (empty while QUEUED or RUNNING, and for a FAILED job)", body = JobSamples),
        JobErrors,
        RateLimited,
        (status = 503, description = "The coordinator has not read the job store yet, or the store is unreachable: retry", body = ErrorBody),
    )
)]
pub async fn job_samples(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<JobSamples>, ApiError> {
    let job = indexed_job(&state, path)?;
    let id = &job.record.job.job_id;
    // The status index answers for unknown and unfinished jobs, so only a
    // COMPLETED job (whose records never change) costs a store read.
    let samples = if job.record.status == JobStatus::Completed {
        state.store().samples(id).await?
    } else {
        Vec::new()
    };
    Ok(Json(JobSamples {
        job_id: id.to_string(),
        status: job.record.status.into(),
        samples,
        as_of_ms: job.status.as_of_ms,
    }))
}

/// The leaderboard as of the last aggregation.
#[utoipa::path(
    get,
    path = "/v1/leaderboard",
    tag = "miners",
    responses(
        (status = 200, description = "Best first", body = LeaderboardResponse),
        RateLimited,
    )
)]
pub async fn leaderboard(State(state): State<ApiState>) -> Json<LeaderboardResponse> {
    Json(leaderboard_response(&state.view().read().leaderboard))
}

pub fn leaderboard_response(board: &crate::leaderboard::Leaderboard) -> LeaderboardResponse {
    LeaderboardResponse {
        block: board.block,
        entries: board
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| LeaderboardEntry {
                rank: i + 1,
                uid: e.uid,
                hotkey: e.hotkey.clone(),
                block: e.block,
                model: e.model.as_ref().map(Model::from),
                job_id: e.job_id.as_ref().map(ToString::to_string),
                status: e
                    .status
                    .map(SubmissionStatus::from)
                    .unwrap_or(SubmissionStatus::Invalid),
                scores: e.components,
                total: e.total,
                score: e.score,
                weight: e.weight,
                reason: e.reason.clone(),
                pending: e.pending.as_ref().map(|p| PendingSubmission {
                    block: p.block,
                    model: Model::from(&p.model),
                    job_id: p.job_id.to_string(),
                    status: p
                        .status
                        .map(SubmissionStatus::from)
                        .unwrap_or(SubmissionStatus::Queued),
                }),
            })
            .collect(),
    }
}

/// The last computed and the last set weights.
#[utoipa::path(
    get,
    path = "/v1/weights",
    tag = "miners",
    responses(
        (status = 200, description = "Weights", body = WeightsResponse),
        RateLimited,
    )
)]
pub async fn weights(State(state): State<ApiState>) -> Json<WeightsResponse> {
    Json(weights_response(&state.view().read(), state.dry_run()))
}

pub fn weights_response(view: &crate::view::View, dry_run: bool) -> WeightsResponse {
    let vector = |w: &common::chain_weights::U16Weights| WeightVector {
        uids: w.uids.clone(),
        weights: w.weights.clone(),
    };
    let w = &view.weights;
    WeightsResponse {
        block: view.block,
        computed: w.computed.as_ref().map(vector),
        computed_at_block: w.computed_at_block,
        set: w.set.as_ref().map(vector),
        set_at_block: w.set_at_block,
        last_error: w.last_error.clone(),
        dry_run,
    }
}

/// Checks the bearer token against the configured one in constant time
/// (both sides hashed first, so the compare does not depend on lengths).
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = state.operator_token() else {
        return Err(ApiError::Forbidden(
            "the operator route is disabled: no operator token is configured \
             (--operator-token-file or EVAL_OPERATOR_TOKEN)",
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(
            "missing `Authorization: Bearer <token>` header",
        ))?
        .as_bytes();
    let token = match given.split_first_chunk::<7>() {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest,
        _ => {
            return Err(ApiError::Unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
    };
    let given = Sha256::digest(token);
    let expected = Sha256::digest(expected.as_bytes());
    if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong operator token"))
    }
}

/// Queues a model by hand (operators only).
#[utoipa::path(
    post,
    path = "/v1/evaluations",
    tag = "operators",
    request_body = EvaluationRequest,
    security(("operator_token" = [])),
    responses(
        (status = 202, description = "Queued: a new job, or one still waiting. `published` says whether this request sent its message; otherwise it is outstanding already, or the coordinator's next reconcile pass sends it", body = EvaluationAccepted),
        (status = 200, description = "The model is already running or evaluated", body = EvaluationAccepted),
        (status = 400, description = "A malformed body (field named)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody,
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "No operator token is configured", body = ErrorBody),
        (status = 408, description = "The body did not arrive within the body timeout; the connection is closed", body = ErrorBody),
        (status = 413, description = "Body larger than the limit", body = ErrorBody),
        (status = 415, description = "Body is not application/json", body = ErrorBody),
        RateLimited,
        (status = 503, description = "Store or queue unreachable: retry", body = ErrorBody),
    )
)]
pub async fn create_evaluation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<EvaluationRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Json(request) = body?;
    check_repo_part("namespace", &request.namespace)?;
    check_repo_part("name", &request.name)?;
    check_template("chat_template", &request.chat_template)?;
    if let Some(revision) = &request.revision {
        check_revision("revision", revision)?;
    }
    let requested_by = request.requested_by.unwrap_or_else(|| "operator".into());
    check_chars("requested_by", &requested_by, 64, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')
    })?;
    let model = ModelRef {
        namespace: request.namespace,
        name: request.name,
        revision: request
            .revision
            .unwrap_or_else(|| DEFAULT_REVISION.to_owned()),
        chat_template: request.chat_template,
    };
    let message = JobMessage::v1(
        model,
        state.profile_version(),
        JobOrigin::Operator {
            requested_by: requested_by.clone(),
        },
        now_ms(),
    );
    let (created, status) = match state.store().enqueue(message.job()).await? {
        Enqueued::Created => (true, JobStatus::Queued),
        Enqueued::Exists(record) => (false, record.status),
    };
    // The same path as the chain loop's: the reconciler sends a message only
    // when none is outstanding, and a failed publish is its next pass's job.
    let waiting = status == JobStatus::Queued;
    let mut report = ReconcileReport::default();
    if waiting {
        state
            .reconciler()
            .publish_if_needed(message.id(), &mut report)
            .await
            .map_err(|e| match e {
                ReconcileError::Store(e) => ApiError::from(e),
                ReconcileError::Queue(e) => ApiError::from(e),
            })?;
    }
    let published = !report.published.is_empty();
    info!(job_id = %message.id(), model = %message.job().model, %requested_by, created, published, "operator job");
    let code = if waiting {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(EvaluationAccepted {
            job_id: message.id().to_string(),
            status: status.into(),
            created,
            published,
        }),
    )
        .into_response())
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The store and the queue answer, and the chain was read recently.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is down (see the checks)", body = Readiness),
    ))]
pub async fn readyz(State(state): State<ApiState>) -> Response {
    let outcome = |r: Result<Result<(), String>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => Check {
            ok: true,
            error: None,
        },
        Ok(Err(e)) => Check {
            ok: false,
            error: Some(e),
        },
        Err(_) => Check {
            ok: false,
            error: Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        },
    };
    let store = state.store();
    let queue = state.queue();
    let (store_check, queue_check) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, async {
            store
                .leaderboard(1)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
        tokio::time::timeout(CHECK_TIMEOUT, async {
            queue.depth().await.map(|_| ()).map_err(|e| e.to_string())
        }),
    );
    let chain = match state.view().read().chain_read_at_ms {
        None => Check {
            ok: false,
            error: Some("the chain has not been read yet".into()),
        },
        Some(at) => {
            let age = Duration::from_millis(now_ms().saturating_sub(at));
            if age > state.chain_stale_after() {
                Check {
                    ok: false,
                    error: Some(format!(
                        "last successful chain read was {}s ago",
                        age.as_secs()
                    )),
                }
            } else {
                Check {
                    ok: true,
                    error: None,
                }
            }
        }
    };
    let readiness = Readiness {
        store: outcome(store_check),
        queue: outcome(queue_check),
        ready: false,
        chain,
    };
    let readiness = Readiness {
        ready: readiness.store.ok && readiness.queue.ok && readiness.chain.ok,
        ..readiness
    };
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness)).into_response()
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics() -> Response {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap_or_else(|e| format!("# metrics encoding failed: {e}\n"));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn openapi() -> Response {
    json_bytes(super::openapi_json())
}

/// The leaderboard page for people.
#[utoipa::path(get, path = "/", tag = "miners",
    responses(
        (status = 200, description = "HTML page", body = String, content_type = "text/html"),
        RateLimited,
    ))]
pub async fn page(State(state): State<ApiState>) -> Html<String> {
    Html(super::page::render(&state.view().read(), state.dry_run()))
}

/// Unknown routes.
pub async fn no_route() -> ApiError {
    ApiError::NoRoute {
        status: 404,
        message: "no such route; see /openapi.json".into(),
    }
}

/// Known route, wrong method.
pub async fn wrong_method() -> ApiError {
    ApiError::NoRoute {
        status: 405,
        message: "method not allowed on this route; see /openapi.json".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_query_parsing() {
        let q = parse_status_query(Some("hotkey=5Abc&chat_template=chatml&revision=v1.0")).unwrap();
        assert_eq!(q.hotkey.as_deref(), Some("5Abc"));
        assert_eq!(q.revision.as_deref(), Some("v1.0"));
        assert_eq!(parse_status_query(None).unwrap(), StatusQuery::default());
        let field = |raw: &str| match parse_status_query(Some(raw)).unwrap_err() {
            ApiError::InvalidParameter { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field("hotkey=a%20b"), "hotkey");
        assert_eq!(field("hotkey="), "hotkey");
        assert_eq!(field("chat_template=%3Cscript%3E"), "chat_template");
        assert_eq!(field("revision=../x"), "revision");
        assert_eq!(field("hotkey=a&hotkey=b"), "hotkey");
        assert_eq!(field("colour=red"), "colour");
        assert!(matches!(
            parse_status_query(Some(&"a".repeat(MAX_QUERY_BYTES + 1))),
            Err(ApiError::UriTooLong { .. })
        ));
        assert!(check_repo_part("name", "..").is_err());
        assert!(check_repo_part("name", &"x".repeat(97)).is_err());
        assert!(check_repo_part("name", "Rp-7B_v1.2").is_ok());
    }
}
