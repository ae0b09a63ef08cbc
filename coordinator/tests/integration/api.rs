//! The HTTP API in process, on the in-memory chain, queue and store: every
//! answer of the miner's status query, input validation, the operator route's
//! refusals, readiness, metrics, the rate limit, a no-5xx property test over
//! the routes of `/openapi.json`, and the leaderboard page in headless
//! Chromium.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use common::chain::MemoryChain;
use common::clock::now_ms;
use common::job::{JobId, JobStatus};
use common::queue::{JobQueue, MemoryQueue};
use common::result::{FailureCode, FailureReason, Outcome, ResultMessage, ResultV1, Scores};
use common::store::testsuite::sample_records;
use common::store::{JobRecord, Lease, MemoryStore, ResultStore};
use common::submission::CommitString;
use coordinator::api::{self, ApiSettings, ApiState, OperatorToken, RateLimit};
use coordinator::leaderboard::model_of;
use coordinator::service::{Coordinator, LoopSettings};
use coordinator::view::SharedView;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

const TOKEN: &str = "operator-token-for-tests-0123456789";
const LEASE: Duration = Duration::from_secs(600);
/// Per-sample records of the fixture's COMPLETED job.
const SAMPLES: usize = 5;

/// A chain of five honest miners and a copycat, one coordinator tick done,
/// and the jobs moved to every status.
struct Fixture {
    chain: Arc<MemoryChain>,
    store: Arc<MemoryStore>,
    queue: Arc<MemoryQueue>,
    view: SharedView,
    coordinator: Coordinator,
    /// Job ids of miners 0..5.
    jobs: Vec<JobId>,
    commits: Vec<CommitString>,
}

fn settings() -> LoopSettings {
    LoopSettings::new("v1", 1, Duration::from_millis(100))
}

fn scores(total: f64) -> Scores {
    Scores {
        components: common::testsuite::distinct_scores(),
        total,
        weights_fingerprint: "fp".into(),
        dataset_sha256: String::new(),
        revision_sha: "abc".into(),
        tokens: 1_000,
        samples_context_cut: None,
        latency: None,
        samples: Vec::new(),
        judge: None,
    }
}

async fn finish(store: &MemoryStore, id: &JobId, outcome: Outcome) {
    store
        .finish(&ResultMessage::V1(ResultV1 {
            job_id: id.clone(),
            profile: "v1".into(),
            outcome,
            worker: "w".into(),
            attempt: 1,
            started_at_ms: now_ms() - 2_000,
            finished_at_ms: now_ms(),
        }))
        .await
        .unwrap();
}

impl Fixture {
    async fn new() -> Self {
        let chain = Arc::new(MemoryChain::new(1_000, "5Validator", 1));
        chain.register("5Validator", true);
        let mut commits = Vec::new();
        for i in 0..5 {
            let hotkey = format!("5Miner{i}");
            chain.register(&hotkey, false);
            let commit =
                CommitString::bound_to("miner", format!("rp-{i}"), "chatml", &hotkey, None);
            chain
                .commit(&hotkey, commit.to_string().as_bytes())
                .unwrap();
            chain.advance(1);
            commits.push(commit);
        }
        // A copied string: bound to 5Miner0, committed by 5Copycat.
        chain.register("5Copycat", false);
        chain
            .commit("5Copycat", commits[0].to_string().as_bytes())
            .unwrap();
        chain.advance(1);
        let store = Arc::new(MemoryStore::new());
        let queue = Arc::new(MemoryQueue::new(3));
        let view = SharedView::default();
        let mut coordinator = Coordinator::new(
            chain.clone(),
            queue.clone(),
            store.clone(),
            settings(),
            view.clone(),
        );
        coordinator.tick().await.unwrap();
        let jobs: Vec<JobId> = commits
            .iter()
            .map(|c| JobId::for_model(&model_of(c), "v1"))
            .collect();
        let job = |i: usize| {
            let store = store.clone();
            let id = jobs[i].clone();
            async move { store.get(&id).await.unwrap().unwrap().job }
        };
        // 0: RUNNING at 40 %; 1: COMPLETED; 2: FAILED; 3, 4: QUEUED.
        store
            .claim(&job(0).await, Lease::new("w0", now_ms(), LEASE))
            .await
            .unwrap();
        store
            .heartbeat(&jobs[0], Lease::new("w0", now_ms(), LEASE), 0.4)
            .await
            .unwrap();
        store
            .claim(&job(1).await, Lease::new("w", now_ms(), LEASE))
            .await
            .unwrap();
        let completed = Scores {
            samples: sample_records(SAMPLES),
            ..scores(0.42)
        };
        finish(&store, &jobs[1], Outcome::Completed(completed)).await;
        store
            .claim(&job(2).await, Lease::new("w", now_ms(), LEASE))
            .await
            .unwrap();
        finish(
            &store,
            &jobs[2],
            Outcome::Failed(FailureReason::new(
                FailureCode::TooLarge,
                "the model is 40 GB, more than the 18 GB limit",
            )),
        )
        .await;
        chain.advance(1);
        coordinator.tick().await.unwrap();
        Self {
            chain,
            store,
            queue,
            view,
            coordinator,
            jobs,
            commits,
        }
    }

    fn state(&self, settings: ApiSettings) -> ApiState {
        ApiState::new(
            self.store.clone(),
            self.queue.clone(),
            self.view.clone(),
            "v1",
            false,
            settings,
        )
    }

    async fn app(&self, settings: ApiSettings) -> (ApiState, Router) {
        let state = self.state(settings);
        state.refresh_index().await.unwrap();
        (state.clone(), api::router(state))
    }
}

fn open() -> ApiSettings {
    ApiSettings {
        rate_limit: None,
        operator_token: Some(OperatorToken::new(TOKEN)),
        ..ApiSettings::default()
    }
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, headers, body)
}

/// `POST /v1/evaluations` with `headers` and `body`.
async fn post_evaluation(
    app: &Router,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, HeaderMap, Bytes) {
    call(app, Method::POST, "/v1/evaluations", headers, body).await
}

async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(app, Method::GET, uri, &[], Body::empty()).await;
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, value)
}

/// Checks a status answer's status, and the code of its reason and a part
/// of its message.
fn assert_reason(answer: &Value, status: &str, code: &str, message_part: &str) {
    assert_eq!(answer["status"], status, "{answer}");
    assert_eq!(answer["reason"]["code"], code, "{answer}");
    let message = answer["reason"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(message_part), "{answer}");
}

#[tokio::test]
async fn status_query_answers_every_status() {
    let fx = Fixture::new().await;
    let (_, app) = fx.app(open()).await;
    let uri = |i: usize| format!("/v1/models/miner/rp-{i}?hotkey=5Miner{i}&chat_template=chatml");

    let (code, running) = get_json(&app, &uri(0)).await;
    assert_eq!(code, StatusCode::OK, "{running}");
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["progress"], 0.4);
    assert_eq!(running["job_id"], fx.jobs[0].as_str());
    assert_eq!(running["uid"], 1);

    let (_, completed) = get_json(&app, &uri(1)).await;
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(completed["total"], 0.42);
    assert_eq!(
        completed["scores"],
        json!({"similarity": 0.5, "vibe": 0.25, "latency": 0.75, "size": 0.125})
    );

    let (_, failed) = get_json(&app, &uri(2)).await;
    assert_reason(&failed, "FAILED", "too_large", "18 GB");

    // Both waiting jobs: positions 1 and 2 in queueing order.
    let mut queued: Vec<JobRecord> = fx.store.jobs_with_status(JobStatus::Queued).await.unwrap();
    queued.sort_by_key(|r| (r.queued_at_ms, r.job.job_id.clone()));
    assert_eq!(queued.len(), 2);
    for (position, record) in queued.iter().enumerate() {
        let i = fx
            .jobs
            .iter()
            .position(|id| *id == record.job.job_id)
            .unwrap();
        let (_, status) = get_json(&app, &uri(i)).await;
        assert_eq!(status["status"], "QUEUED", "{status}");
        assert_eq!(status["queue_position"], position as u64 + 1, "{status}");
        assert_eq!(status["queue_length"], 2);
    }

    // Without chat_template or hotkey: the repository's job; case-insensitive names.
    let (_, by_repo) = get_json(&app, "/v1/models/Miner/RP-1").await;
    assert_eq!(by_repo["status"], "COMPLETED");
    // The same job by id.
    let (_, by_id) = get_json(&app, &format!("/v1/jobs/{}", fx.jobs[1])).await;
    assert_eq!(by_id, completed);

    // The copycat's commitment was refused: INVALID with the reason.
    let (code, invalid) = get_json(
        &app,
        "/v1/models/miner/rp-0?hotkey=5Copycat&chat_template=chatml",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_reason(&invalid, "INVALID", "hash_mismatch", "another hotkey");

    // Unknown model: 404 with a message that says what to check.
    let (code, missing) = get_json(&app, "/v1/models/nobody/nothing?chat_template=chatml").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "not_found");
    let message = missing["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("nobody/nothing") && message.contains("chatml"),
        "{message}"
    );
    let (code, missing) = get_json(&app, "/v1/models/nobody/nothing?hotkey=5Stranger").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no uid"),
        "{missing}"
    );
    // Another template of a known repository is another (unknown) job.
    let (code, _) = get_json(&app, "/v1/models/miner/rp-1?chat_template=llama3").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = get_json(&app, &format!("/v1/jobs/{}", "0".repeat(32))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Progress moves once the index is refreshed.
    fx.store
        .heartbeat(&fx.jobs[0], Lease::new("w0", now_ms(), LEASE), 0.9)
        .await
        .unwrap();
    let (state, app) = fx.app(open()).await;
    let (_, running) = get_json(&app, &uri(0)).await;
    assert_eq!(running["progress"], 0.9);
    drop(state);
    let _ = (&fx.chain, &fx.commits, &fx.coordinator);
}

/// `GET /v1/jobs/{id}/samples`: the records of a COMPLETED job as JSON,
/// the status and an empty list before, and `/v1/jobs/{id}`'s refusals.
#[tokio::test]
async fn job_samples_answer_every_status() {
    let fx = Fixture::new().await;
    let (_, app) = fx.app(open()).await;
    let samples = |i: usize| format!("/v1/jobs/{}/samples", fx.jobs[i]);

    let (code, headers, body) = call(&app, Method::GET, &samples(1), &[], Body::empty()).await;
    assert_eq!(code, StatusCode::OK);
    // The model's replies are data for a program, never a page to render.
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let completed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(completed["status"], "COMPLETED", "{completed}");
    assert_eq!(completed["job_id"], fx.jobs[1].as_str());
    let expected: Vec<Value> = sample_records(SAMPLES)
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(completed["samples"], Value::Array(expected), "{completed}");
    // Spelled out once, so that the route's shape is pinned here too.
    assert_eq!(
        completed["samples"][0],
        json!({
            "conversation_id": "conversation-0",
            "similarity": 0.5,
            "vibe": 0.0,
            "reply": "reply 0: \"quoted\" <script>alert(1)</script> \\ ünïcode ✓\nline two",
            "context_cut": true,
        })
    );
    // A judged sample (profile v2) carries the judge's verdict.
    assert_eq!(
        completed["samples"][1],
        json!({
            "conversation_id": "conversation-1",
            "similarity": 1.0 / 3.0,
            "context_cut": false,
            "verdict": {
                "candidate_first": {"a": 0.625, "b": 0.125},
                "candidate_second": {"a": 0.25, "b": 0.5},
                "preference": 0.75,
                "outcome": "win",
            },
        })
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.contains(r#"\"quoted\" <script>"#),
        "the reply is a JSON string: {text}"
    );

    // Not COMPLETED: the status, and no samples.
    for (i, status) in [(0, "RUNNING"), (2, "FAILED")] {
        let (code, body) = get_json(&app, &samples(i)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["samples"], json!([]), "{body}");
    }
    let queued = fx.store.jobs_with_status(JobStatus::Queued).await.unwrap();
    let (_, body) = get_json(&app, &format!("/v1/jobs/{}/samples", queued[0].job.job_id)).await;
    assert_eq!(
        (&body["status"], &body["samples"]),
        (&json!("QUEUED"), &json!([]))
    );

    // Unknown or malformed ids: exactly what `/v1/jobs/{id}` answers.
    let unknown = "0".repeat(32);
    let (code, missing) = get_json(&app, &format!("/v1/jobs/{unknown}/samples")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(
        missing,
        get_json(&app, &format!("/v1/jobs/{unknown}")).await.1
    );
    assert_eq!(missing["error"]["code"], "not_found");
    let (code, bad) = get_json(&app, "/v1/jobs/ABCDEF/samples").await;
    assert_eq!(
        (code, &bad["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("id"))
    );
    let (code, _, _) = call(&app, Method::POST, &samples(1), &[], Body::empty()).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);

    // The status says COMPLETED only once the records are there: a job
    // completed after the last index refresh still answers RUNNING.
    let running = fx.store.get(&fx.jobs[0]).await.unwrap().unwrap();
    fx.store
        .finish(&common::store::testsuite::completed_with_samples(
            &running.job,
            0.3,
            "w0",
            sample_records(2),
        ))
        .await
        .unwrap();
    let (_, body) = get_json(&app, &samples(0)).await;
    assert_eq!(
        (&body["status"], &body["samples"]),
        (&json!("RUNNING"), &json!([]))
    );
    let (_, app) = fx.app(open()).await;
    let (_, body) = get_json(&app, &samples(0)).await;
    assert_eq!(body["status"], "COMPLETED");
    assert_eq!(body["samples"].as_array().unwrap().len(), 2, "{body}");
}

/// Every route the router serves is in the OpenAPI document and has a
/// metrics label, and the document names no route the router lacks.
#[tokio::test]
async fn every_route_is_documented_and_labelled() {
    let fx = Fixture::new().await;
    let (_, app) = fx.app(open()).await;
    let (_, doc) = get_json(&app, "/openapi.json").await;
    let mut documented: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort_unstable();
    let mut labelled: Vec<&str> = api::ROUTES
        .iter()
        .copied()
        .filter(|r| *r != api::http_metrics::UNMATCHED)
        .collect();
    labelled.sort_unstable();
    assert_eq!(documented, labelled);
    assert!(documented.contains(&"/v1/jobs/{id}/samples"));
    for route in documented {
        let uri = fill(route, &["miner".into(), "rp-1".into()]);
        let (code, _, _) = call(&app, Method::GET, &uri, &[], Body::empty()).await;
        // Routed (a POST-only route answers 405), never the fallback's 404.
        assert_ne!(code, StatusCode::NOT_FOUND, "{route} is not routed");
    }
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field() {
    let fx = Fixture::new().await;
    let (_, app) = fx.app(open()).await;
    for (uri, field) in [
        ("/v1/models/miner/rp-1?hotkey=5%20x", "hotkey"),
        (
            "/v1/models/miner/rp-1?chat_template=%3Cscript%3E",
            "chat_template",
        ),
        ("/v1/models/miner/rp-1?revision=..%2Fetc", "revision"),
        ("/v1/models/miner/rp-1?hotkey=a&hotkey=b", "hotkey"),
        ("/v1/models/miner/rp-1?colour=red", "colour"),
        ("/v1/models/mi%20ner/rp-1", "namespace"),
        ("/v1/models/miner/..", "name"),
        ("/v1/models/miner/%FF", "path"),
        ("/v1/jobs/..%2F..%2Fetc", "id"),
        ("/v1/jobs/ABCDEF", "id"),
        ("/v1/jobs/..%2F..%2Fetc/samples", "id"),
    ] {
        let (code, body) = get_json(&app, uri).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{uri}");
        assert_eq!(body["error"]["field"], field, "{uri}: {body}");
    }
    let long = format!("/v1/models/miner/rp-1?hotkey={}", "a".repeat(2_000));
    let (code, body) = get_json(&app, &long).await;
    assert_eq!(code, StatusCode::URI_TOO_LONG, "{body}");
    let (code, body) = get_json(&app, "/v1/nothing/here").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "no_route");
    let (code, _, body) = call(&app, Method::DELETE, "/v1/leaderboard", &[], Body::empty()).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn operator_route_refuses_without_the_right_token() {
    let fx = Fixture::new().await;
    let body =
        json!({"namespace": "ops", "name": "manual-7b", "chat_template": "chatml"}).to_string();
    let json_type = ("content-type", "application/json");

    // No token configured: the route is disabled.
    let (_, closed) = fx
        .app(ApiSettings {
            operator_token: None,
            ..open()
        })
        .await;
    let (code, _, answer) = post_evaluation(&closed, &[json_type], body.clone()).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{answer:?}");

    let (_, app) = fx.app(open()).await;
    let depth = fx.queue.depth().await.unwrap().ready;
    let (code, headers, answer) = post_evaluation(&app, &[json_type], body.clone()).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    for auth in [
        "Bearer wrong-token",
        "Basic b3A6cHc=",
        "Bearer",
        &format!("Bearer {TOKEN}x"),
    ] {
        let (code, _, answer) =
            post_evaluation(&app, &[json_type, ("authorization", auth)], body.clone()).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{auth}: {answer:?}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(answer["error"]["code"], "unauthorized");
    }
    assert_eq!(
        fx.queue.depth().await.unwrap().ready,
        depth,
        "nothing was queued"
    );

    // The right token queues the model, once.
    let bearer = format!("Bearer {TOKEN}");
    let auth = [json_type, ("authorization", bearer.as_str())];
    let (code, _, answer) = post_evaluation(&app, &auth, body.clone()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{answer:?}");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["created"], true);
    let id: JobId = answer["job_id"].as_str().unwrap().parse().unwrap();
    let record = fx.store.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    assert!(matches!(
        record.job.origin,
        common::job::JobOrigin::Operator { .. }
    ));
    assert_eq!(fx.queue.depth().await.unwrap().ready, depth + 1);
    // Asking again for a known, finished model changes nothing.
    let finished =
        json!({"namespace": "miner", "name": "rp-1", "chat_template": "chatml"}).to_string();
    let (code, _, answer) = post_evaluation(&app, &auth, finished).await;
    assert_eq!(code, StatusCode::OK, "{answer:?}");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(
        (answer["created"].clone(), answer["status"].clone()),
        (json!(false), json!("COMPLETED"))
    );
    assert_eq!(fx.queue.depth().await.unwrap().ready, depth + 1);

    // Bodies: malformed, wrong field, too large, wrong type.
    for (bad, expected, field) in [
        ("{", StatusCode::BAD_REQUEST, None),
        (
            r#"{"namespace":"a","name":"b","chat_template":"c","extra":1}"#,
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            r#"{"namespace":"a b","name":"b","chat_template":"c"}"#,
            StatusCode::BAD_REQUEST,
            Some("namespace"),
        ),
        (
            r#"{"namespace":"a","name":"b","chat_template":"c","requested_by":"<x>"}"#,
            StatusCode::BAD_REQUEST,
            Some("requested_by"),
        ),
    ] {
        let (code, _, answer) = post_evaluation(&app, &auth, bad.to_owned()).await;
        assert_eq!(code, expected, "{bad}: {answer:?}");
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        if let Some(field) = field {
            assert_eq!(answer["error"]["field"], field);
        }
    }
    let huge = format!(
        r#"{{"namespace":"{}","name":"b","chat_template":"c"}}"#,
        "a".repeat(64 * 1024)
    );
    let (code, _, _) = post_evaluation(&app, &auth, huge).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, _, _) = post_evaluation(
        &app,
        &[
            ("authorization", bearer.as_str()),
            ("content-type", "text/plain"),
        ],
        body,
    )
    .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn readiness_follows_the_chain_read() {
    let chain = Arc::new(MemoryChain::new(1_000, "5Validator", 1));
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new(3));
    let view = SharedView::default();
    let state = ApiState::new(
        store.clone(),
        queue.clone(),
        view.clone(),
        "v1",
        false,
        open(),
    );
    let app = api::router(state);
    let (code, body) = get_json(&app, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["chain"]["ok"], false);
    assert_eq!(body["store"]["ok"], true);
    let mut coordinator = Coordinator::new(chain, queue, store, settings(), view);
    coordinator.tick().await.unwrap();
    let (code, body) = get_json(&app, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], true);
    let (code, body) = get_json(&app, "/healthz").await;
    assert_eq!(
        (code, body["status"].clone()),
        (StatusCode::OK, json!("ok"))
    );
}

#[tokio::test]
async fn metrics_list_every_agreed_name() {
    let fx = Fixture::new().await;
    coordinator::metrics::init(api::ROUTES);
    let (_, app) = fx.app(open()).await;
    let _ = get_json(&app, "/v1/models/miner/rp-1?chat_template=chatml").await;
    let (code, _, body) = call(&app, Method::GET, "/metrics", &[], Body::empty()).await;
    assert_eq!(code, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    for name in [
        "eval_coordinator_jobs_published_total{reason=\"new\"}",
        "eval_coordinator_jobs_published_total{reason=\"republished\"}",
        "eval_coordinator_jobs_published_total{reason=\"stranded\"}",
        "eval_coordinator_reconciler_repairs_total{action=\"reclaimed\"}",
        "eval_coordinator_reconciler_repairs_total{action=\"stranded\"}",
        "eval_coordinator_reconciler_repairs_total{action=\"failed\"}",
        "eval_coordinator_jobs_unpublished",
        "eval_coordinator_dead_letters_settled_total",
        "eval_coordinator_submissions{verdict=\"hash_mismatch\"}",
        "eval_coordinator_queue_depth",
        "eval_coordinator_chain_block",
        "eval_coordinator_last_weights_set_block",
        "eval_coordinator_weight_sets_total{result=\"dry_run\"}",
        "eval_coordinator_jobs{status=\"queued\"} 2",
        "eval_coordinator_jobs{status=\"running\"} 1",
        "eval_coordinator_jobs{status=\"completed\"} 1",
        "eval_coordinator_jobs_finished_total{outcome=\"failed\"}",
        "eval_coordinator_failed_jobs{reason=\"too_large\"} 1",
        "eval_coordinator_failed_jobs{reason=\"timeout\"} 0",
        "eval_coordinator_job_duration_seconds_bucket{le=\"14400\"}",
        "eval_coordinator_eval_tokens_per_second",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    // HTTP metrics are labelled by route pattern, not by raw path.
    let line = |prefix: &str, parts: &[&str]| {
        text.lines()
            .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(line(
        "eval_coordinator_http_requests_total{",
        &["route=\"/v1/models/{namespace}/{name}\"", "code=\"200\""]
    ));
    assert!(line(
        "eval_coordinator_http_request_duration_seconds_bucket{",
        &["route=\"/readyz\""]
    ));
    assert!(!text.contains("rp-1\""), "raw paths must not become labels");
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let fx = Fixture::new().await;
    let (_, app) = fx
        .app(ApiSettings {
            rate_limit: Some(RateLimit {
                per_second: 0.5,
                burst: 3,
            }),
            ..open()
        })
        .await;
    for _ in 0..3 {
        let (code, _) = get_json(&app, "/v1/leaderboard").await;
        assert_eq!(code, StatusCode::OK);
    }
    let (code, headers, body) = call(&app, Method::GET, "/v1/weights", &[], Body::empty()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "2");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Probes and metrics are not limited.
    let (code, _) = get_json(&app, "/healthz").await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn leaderboard_and_weights_json() {
    let mut fx = Fixture::new().await;
    fx.chain.advance(5);
    fx.coordinator.tick().await.unwrap();
    let (_, app) = fx.app(open()).await;
    let (code, board) = get_json(&app, "/v1/leaderboard").await;
    assert_eq!(code, StatusCode::OK);
    let entries = board["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 7, "{board}");
    assert_eq!(entries[0]["rank"], 1);
    assert_eq!(entries[0]["hotkey"], "5Miner1");
    assert_eq!(entries[0]["status"], "COMPLETED");
    assert!(
        entries
            .iter()
            .any(|e| e["hotkey"] == "5Copycat" && e["status"] == "INVALID")
    );
    let (_, weights) = get_json(&app, "/v1/weights").await;
    assert_eq!(weights["computed"]["uids"], json!([2]), "{weights}");
    assert_eq!(weights["set"]["weights"], json!([65535]), "{weights}");
}

/// Fills `{param}`s of a route pattern.
fn fill(pattern: &str, values: &[String]) -> String {
    let mut out = String::new();
    let mut values = values.iter();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e + 1)
            .unwrap_or(rest.len());
        out.push_str(values.next().map(String::as_str).unwrap_or("x"));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

mod property {
    use proptest::prelude::*;

    use super::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9._-]{1,12}",
            "(%[0-9A-Fa-f]{2}|[a-z.~!$&'()*+,;=:@-]){0,40}",
            "[0-9a-f]{32}",
            Just("..".to_owned()),
            Just("%00".to_owned()),
            Just("%2F..%2F".to_owned()),
            ".{0,8}".prop_map(|s| s.bytes().map(|b| format!("%{b:02X}")).collect()),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "(hotkey|chat_template|revision|x|%FF)=(%[0-9A-Fa-f]{2}|[a-zA-Z0-9._&=-]){0,30}",
            "[ -~]{0,60}".prop_map(|s| s.replace([' ', '#'], "+")),
        ]
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            Just(br#"{"namespace":"a","name":"b","chat_template":"c"}"#.to_vec()),
            "\\{\"namespace\":\"[ -~]{0,10}\",\"name\":\"[ -~]{0,10}\",\"chat_template\":\"[ -~]{0,10}\"\\}"
                .prop_map(String::into_bytes),
        ]
    }

    fn method() -> impl Strategy<Value = Method> {
        prop_oneof![
            Just(Method::GET),
            Just(Method::POST),
            Just(Method::PUT),
            Just(Method::DELETE),
            Just(Method::HEAD),
            Just(Method::OPTIONS),
        ]
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(format!("Bearer {TOKEN}")),
            "Bearer [ -~]{0,40}",
            "[ -~]{0,40}",
            Just("application/json".to_owned()),
        ]
    }

    /// No client input gets a 5xx: every route of `/openapi.json` with
    /// hostile path segments, query strings, bodies, methods and headers.
    #[test]
    fn no_client_input_gets_a_5xx() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (app, routes) = runtime.block_on(async {
            let fx = Fixture::new().await;
            let (_, app) = fx.app(open()).await;
            let (_, doc) = get_json(&app, "/openapi.json").await;
            let routes: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
            (app, routes)
        });
        assert!(routes.len() >= 9, "{routes:?}");
        let config = ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        };
        proptest!(config, |(
            route in proptest::sample::select(routes.clone()),
            segments in proptest::collection::vec(segment(), 3),
            query in query(),
            method in method(),
            body in body(),
            auth in proptest::option::of(header_value()),
            content_type in proptest::option::of(header_value()),
        )| {
            let mut uri = fill(&route, &segments);
            if !query.is_empty() {
                uri = format!("{uri}?{query}");
            }
            let Ok(uri) = uri.parse::<axum::http::Uri>() else {
                // Not a URI a client could send; hyper would refuse it first.
                return Ok(());
            };
            let mut request = Request::builder().method(method.clone()).uri(uri.clone());
            if let Some(auth) = &auth {
                request = request.header("authorization", auth.as_str());
            }
            if let Some(content_type) = &content_type {
                request = request.header("content-type", content_type.as_str());
            }
            let Ok(request) = request.body(Body::from(body.clone())) else {
                return Ok(());
            };
            let response = runtime.block_on(app.clone().oneshot(request)).unwrap();
            let status = response.status();
            let bytes = runtime
                .block_on(axum::body::to_bytes(response.into_body(), 1 << 22))
                .unwrap();
            prop_assert!(
                !status.is_server_error(),
                "{method} {uri} → {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
            if status.is_client_error() && method != Method::HEAD {
                let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    TestCaseError::fail(format!("{method} {uri} → {status}, body not JSON: {e}"))
                })?;
                prop_assert!(body["error"]["code"].is_string(), "{body}");
            }
        });
    }
}

/// The page in headless Chromium: the DOM holds the leaderboard rows and the
/// screenshot is not blank.
#[tokio::test]
async fn page_renders_in_headless_chromium() {
    let mut fx = Fixture::new().await;
    fx.chain.advance(5);
    fx.coordinator.tick().await.unwrap();
    let state = fx.state(open());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(api::serve(listener, state, stop.clone()));
    let url = format!("http://{addr}/");
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium is required: `apt-get install -y chromium` (scripts/test installs it)");
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
    ];
    let profile = format!("--user-data-dir={}", dir.path().join("profile").display());
    // Headless Chromium on the page with `args`, which must succeed.
    let run = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(chromium);
        command.args(flags).arg(&profile).args(&args).arg(&url);
        async move {
            let out = command.output().await.unwrap();
            assert!(
                out.status.success(),
                "chromium {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out
        }
    };
    let dom = run(vec!["--dump-dom".into()]).await;
    let dom = String::from_utf8_lossy(&dom.stdout);
    let rows = dom.matches("<tr class=").count();
    assert_eq!(rows, 7, "7 leaderboard rows expected in the DOM:\n{dom}");
    for text in [
        "miner/rp-1",
        "5Copycat",
        "COMPLETED",
        "RUNNING",
        "QUEUED",
        "FAILED",
        "INVALID",
        "Last set on chain at block",
    ] {
        assert!(dom.contains(text), "{text} missing from the DOM:\n{dom}");
    }

    let png = dir.path().join("page.png");
    run(vec![
        format!("--screenshot={}", png.display()),
        "--window-size=1200,800".into(),
    ])
    .await;
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1200, 800));
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let mut colours = std::collections::HashSet::new();
    let mut dark = 0usize;
    for px in pixels.chunks(channels) {
        colours.insert(px[..3.min(channels)].to_vec());
        if px[..3.min(channels)].iter().all(|&c| c < 100) {
            dark += 1;
        }
    }
    // A blank page is one colour; the table has a dark header, text and links.
    assert!(
        colours.len() > 50,
        "only {} colours in the screenshot",
        colours.len()
    );
    assert!(
        dark > 2_000,
        "only {dark} dark pixels: no table header or text rendered"
    );

    stop.cancel();
    server.await.unwrap().unwrap();
}

/// The server under hostile clients, on real loopback sockets with short
/// limits: each timeout closes the connection in time, and connections over
/// the cap are answered 503 and closed.
mod connections {
    use std::net::SocketAddr;
    use std::time::Instant;

    use coordinator::api::ConnectionLimits;
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;

    const HEADER: Duration = Duration::from_millis(400);
    const BODY: Duration = Duration::from_millis(400);
    const IDLE: Duration = Duration::from_millis(600);
    /// Room for a loaded test machine; still far below the defaults (10 s+).
    const SLACK: Duration = Duration::from_millis(1_500);

    fn limits(max_connections: usize) -> ApiSettings {
        ApiSettings {
            body_timeout: BODY,
            connections: ConnectionLimits {
                max_connections,
                header_timeout: HEADER,
                idle_timeout: IDLE,
            },
            ..open()
        }
    }

    struct Server {
        addr: SocketAddr,
        state: ApiState,
        stop: CancellationToken,
        task: JoinHandle<std::io::Result<()>>,
    }

    async fn start(settings: ApiSettings) -> Server {
        let state = ApiState::new(
            Arc::new(MemoryStore::new()),
            Arc::new(MemoryQueue::new(3)),
            SharedView::default(),
            "v1",
            false,
            settings,
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(api::serve(listener, state.clone(), stop.clone()));
        Server {
            addr,
            state,
            stop,
            task,
        }
    }

    /// Reads until the server closes the connection (EOF or reset); returns
    /// what arrived and when the connection closed. Fails after `limit`.
    async fn until_closed(
        stream: &mut (impl AsyncRead + Unpin),
        limit: Duration,
    ) -> (Vec<u8>, Instant) {
        let mut received = Vec::new();
        let mut buf = [0u8; 8192];
        tokio::time::timeout(limit, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return (received, Instant::now()),
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the connection was still open after {limit:?}"))
    }

    /// Waits until the server closes `stream` without a byte of answer, and
    /// checks that it waited out the header timeout (less `margin`) since
    /// `since`.
    async fn assert_closed_unanswered(stream: &mut TcpStream, since: Instant, margin: Duration) {
        let (received, closed) = until_closed(stream, HEADER + SLACK).await;
        assert!(received.is_empty(), "{received:?}");
        assert!(closed - since >= HEADER - margin);
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_header_timeout() {
        let server = start(limits(16)).await;
        let opened = Instant::now();
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        assert_closed_unanswered(&mut stream, opened, Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn headers_sent_a_byte_at_a_time_are_cut_off() {
        let server = start(limits(16)).await;
        let opened = Instant::now();
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        // Each byte comes well within the idle timeout: only the header
        // timeout can end this.
        let drip = tokio::spawn(async move {
            for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
                .iter()
                .cycle()
            {
                if write.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (_, closed) = until_closed(&mut read, HEADER + SLACK).await;
        assert!(closed - opened >= HEADER - Duration::from_millis(50));
        drip.abort();
    }

    #[tokio::test]
    async fn a_slow_body_is_answered_408_and_the_connection_closed() {
        let server = start(limits(16)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/evaluations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let sent = Instant::now();
        let (mut read, mut write) = stream.into_split();
        let drip = tokio::spawn(async move {
            loop {
                if write.write_all(b" ").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let (received, closed) = until_closed(&mut read, BODY + SLACK).await;
        drip.abort();
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        assert!(text.contains("\"body_timeout\""), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
        assert!(closed - sent >= BODY - Duration::from_millis(50));
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_when_idle() {
        let server = start(limits(16)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&response).contains("\"ok\"") {
            let n = stream.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "closed before answering");
            response.extend_from_slice(&buf[..n]);
        }
        let answered = Instant::now();
        assert!(response.starts_with(b"HTTP/1.1 200 "));
        assert_closed_unanswered(&mut stream, answered, Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_after_the_idle_timeout() {
        let server = start(limits(16)).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        // Far more answer than the socket buffers hold (each document is
        // tens of KiB), asked for at once and never read: the server's
        // writes stall, and only the idle timeout ends them.
        let document = api::openapi_json().len();
        let requests = (64 << 20) / document + 1;
        let pipelined = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let _ = write.write_all(pipelined.as_bytes()).await;
            write
        });
        tokio::time::sleep(IDLE + SLACK).await;
        // By now the server gave up: draining the socket ends early.
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => total += n,
                }
            }
        })
        .await
        .expect("the stalled connection was still open");
        assert!(
            total < requests * document,
            "all {requests} answers arrived ({total} bytes): nothing stalled"
        );
        writer.abort();
    }

    #[tokio::test]
    async fn connections_over_the_cap_are_answered_503_and_closed() {
        // Long timeouts: the held connections must outlive the test's steps.
        let server = start(ApiSettings {
            connections: ConnectionLimits {
                max_connections: 3,
                header_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(30),
            },
            ..open()
        })
        .await;
        let refused_before = coordinator::metrics::HTTP_CONNECTIONS_REFUSED.get();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(TcpStream::connect(server.addr).await.unwrap());
        }
        // The server takes the three before it sees the fourth.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut extra = TcpStream::connect(server.addr).await.unwrap();
        let (received, _) = until_closed(&mut extra, SLACK).await;
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        assert!(text.contains("retry-after: 1"), "{text}");
        assert!(text.contains("\"too_many_connections\""), "{text}");
        assert!(coordinator::metrics::HTTP_CONNECTIONS_REFUSED.get() > refused_before);
        // The admin port answers the probes and metrics meanwhile, and
        // nothing else.
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin_addr = admin_listener.local_addr().unwrap();
        let admin = tokio::spawn(api::serve_admin(
            admin_listener,
            server.state.clone(),
            server.stop.clone(),
        ));
        for (path, status) in [
            ("/healthz", "200"),
            ("/metrics", "200"),
            ("/v1/leaderboard", "404"),
        ] {
            let mut probe = TcpStream::connect(admin_addr).await.unwrap();
            probe
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
            let (received, _) = until_closed(&mut probe, SLACK).await;
            let text = String::from_utf8_lossy(&received);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} ")),
                "{path}: {text}"
            );
        }
        // The held connections are served as usual…
        let mut first = held.remove(0);
        first
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (received, _) = until_closed(&mut first, SLACK).await;
        assert!(received.starts_with(b"HTTP/1.1 200 "), "{received:?}");
        // …and a closed one frees its place.
        drop(first);
        let mut answered = None;
        for _ in 0..20 {
            let mut next = TcpStream::connect(server.addr).await.unwrap();
            next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let (received, _) = until_closed(&mut next, SLACK).await;
            if received.starts_with(b"HTTP/1.1 200 ") {
                answered = Some(received);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            answered.is_some(),
            "no place freed after a connection closed"
        );
        drop(held);
        server.stop.cancel();
        tokio::time::timeout(SLACK, admin)
            .await
            .expect("the admin port stopped")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let server = start(limits(16)).await;
        let mut idle = TcpStream::connect(server.addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.stop.cancel();
        let (received, _) = until_closed(&mut idle, SLACK).await;
        assert!(received.is_empty(), "{received:?}");
        tokio::time::timeout(SLACK, server.task)
            .await
            .expect("serve returned")
            .unwrap()
            .unwrap();
    }
}
