//! The node's HTTP API (axum): JSON bodies, hex ids, errors as `{error, hint}`.
//!
//! It listens on loopback by default and has no authentication: `POST /v1/mutable` takes the
//! signing seed, so whoever reaches the API can sign as any key sent to it and make the node
//! publish anything. `xorro node` refuses a non-loopback address unless told
//! `--api-allow-remote`. The routes are listed once, in [`routes`]; `docs/openapi.yaml`
//! describes them and a test checks that the two agree.
//!
//! | status | when |
//! | --- | --- |
//! | 400 | bad input: the body says which field and what is expected |
//! | 404 | nothing found (an item, peers), or an unknown route |
//! | 409 | a mutable put lost its compare-and-swap or its seq is too low |
//! | 502 | no node of the network answered |
//! | 503 | the node is busy (too many lookups) or shutting down |
//! | 500 | the node could not save to its data directory |

pub mod metrics;
pub mod types;

use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower_http::trace::TraceLayer;
use xorro_dht::CommandError;
use xorro_node::{Dht, DhtError};
use xorro_wire::bep44::Keypair;
use xorro_wire::{InfoHash, NodeId, RawValue};

use crate::parse;
use types::ErrorBody;

/// The largest request body accepted.
pub const BODY_MAX: usize = 16 * 1024;

/// What every handler gets: the node.
#[derive(Debug, Clone)]
pub struct AppState {
    dht: Dht,
}

/// One route: its method, its path (OpenAPI syntax: `{name}` for a parameter) and handler.
#[derive(Debug)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let filter =
        MethodFilter::try_from(method.clone()).expect("GET, POST and DELETE have method filters");
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route of the API, in one place.
pub fn routes() -> Vec<Route> {
    vec![
        route(Method::GET, "/v1/status", status),
        route(Method::GET, "/v1/routing-table", routing_table),
        route(Method::POST, "/v1/ping", ping),
        route(Method::GET, "/v1/find-node/{id}", find_node),
        route(Method::GET, "/v1/peers/{infohash}", peers),
        route(Method::POST, "/v1/announce", announce),
        route(Method::DELETE, "/v1/announce/{infohash}", unannounce),
        route(Method::POST, "/v1/immutable", put_immutable),
        route(Method::GET, "/v1/immutable/{target}", get_immutable),
        route(Method::POST, "/v1/mutable", put_mutable),
        route(Method::GET, "/v1/mutable/{pubkey}", get_mutable),
        route(Method::GET, "/v1/samples/{target}", samples),
        route(Method::GET, "/metrics", metrics_text),
    ]
}

/// The API of `dht`.
pub fn router(dht: Dht) -> Router {
    let mut router = Router::new();
    for r in routes() {
        tracing::trace!(method = %r.method, path = r.path, "route");
        router = router.route(r.path, r.handler);
    }
    router
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .layer(TraceLayer::new_for_http())
        .with_state(AppState { dht })
}

/// Serves the API of `dht` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, dht: Dht) -> std::io::Result<()> {
    axum::serve(listener, router(dht)).await
}

/// An error answer: a status and `{error, hint}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: Option<&str>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                hint: hint.map(str::to_owned),
            },
        }
    }

    fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error, None)
    }

    fn not_found(error: impl Into<String>, hint: Option<&str>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error, hint)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

const NO_CONTACTS_HINT: &str = "the node may have no contacts yet: check `xorro routing-table` and the node's bootstrap addresses";

impl From<DhtError> for ApiError {
    fn from(e: DhtError) -> Self {
        let text = e.to_string();
        match e {
            DhtError::Stopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                Some("the node is shutting down"),
            ),
            DhtError::Refused(xorro_dht::StartError::TooManyLookups(_)) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                text,
                Some("the node is busy: retry in a moment"),
            ),
            DhtError::Refused(xorro_dht::StartError::InvalidItem(_)) => ApiError::bad_request(text),
            DhtError::Failed(CommandError::NoResponse) => {
                ApiError::new(StatusCode::BAD_GATEWAY, text, Some(NO_CONTACTS_HINT))
            }
            DhtError::Failed(CommandError::CasMismatch { .. } | CommandError::SeqTooLow { .. }) => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    text,
                    Some(
                        "fetch the item for its current seq, then put again with a higher --seq or the right --cas",
                    ),
                )
            }
            DhtError::Failed(CommandError::Cancelled) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, text, None)
            }
            DhtError::Storage(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                text,
                Some("the node could not write to its data directory: see its log"),
            ),
        }
    }
}

type ApiResult<T> = Result<axum::Json<T>, ApiError>;

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON for this route: {e}"
        ))
    })
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

async fn no_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        format!("no route {method} {}", uri.path()),
        Some("the routes are described in docs/openapi.yaml"),
    )
}

async fn status(State(s): State<AppState>) -> ApiResult<types::Status> {
    let st = s.dht.status().await?;
    Ok(axum::Json(types::Status::from(&st)))
}

async fn routing_table(State(s): State<AppState>) -> ApiResult<types::RoutingTable> {
    let contacts = s.dht.routing_table().await?;
    Ok(axum::Json(types::RoutingTable {
        contacts: contacts.iter().map(types::Contact::from).collect(),
    }))
}

async fn ping(State(s): State<AppState>, body: Bytes) -> ApiResult<types::Pong> {
    let req: types::PingRequest = json_body(&body)?;
    let text = parse::host_port("addr", &req.addr).map_err(bad)?;
    let addr = tokio::net::lookup_host(&text)
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad(format!("addr '{text}' does not resolve to an address")))?;
    let started = Instant::now();
    match s.dht.ping(addr).await {
        Ok(node) => Ok(axum::Json(types::Pong {
            node: types::Node::from(&node),
            rtt_ms: started.elapsed().as_secs_f64() * 1000.0,
        })),
        Err(DhtError::Failed(CommandError::NoResponse)) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("no answer from {addr}"),
            Some("is a DHT node running there, and is the port its UDP port?"),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn find_node(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<types::FindNode> {
    let target: NodeId = parse::id("ID", &id).map_err(bad)?;
    let (nodes, stats) = s.dht.find_node_with_stats(target).await?;
    Ok(axum::Json(types::FindNode {
        target: target.to_string(),
        nodes: types::nodes(&nodes),
        lookup: types::Lookup::from(&stats),
    }))
}

/// `?stream=true` of `GET /v1/peers/{infohash}`.
#[derive(Debug, serde::Deserialize)]
struct PeersQuery {
    #[serde(default)]
    stream: bool,
}

fn peers_result(info_hash: InfoHash, r: &xorro_node::PeersResult) -> types::Peers {
    types::Peers {
        info_hash: info_hash.to_string(),
        peers: r.peers.iter().map(ToString::to_string).collect(),
        closest: types::nodes(&r.closest),
        lookup: types::Lookup::from(&r.stats),
    }
}

async fn peers(
    State(s): State<AppState>,
    Path(infohash): Path<String>,
    Query(q): Query<PeersQuery>,
) -> Result<Response, ApiError> {
    let info_hash: InfoHash = parse::id("INFOHASH", &infohash).map_err(bad)?;
    let stream = s.dht.get_peers(info_hash).await?;
    if !q.stream {
        let r = stream.finish().await?;
        if r.peers.is_empty() {
            return Err(ApiError::not_found(
                format!("no peers found for {info_hash}"),
                Some("nobody announced it, or the announcements expired (30 min)"),
            ));
        }
        return Ok(axum::Json(peers_result(info_hash, &r)).into_response());
    }
    // NDJSON: a line per batch of new peers, then a `done` (or `error`) line.
    let lines = futures_util::stream::unfold(Some(stream), move |state| async move {
        let mut stream = state?;
        let line = match stream.next().await {
            Some(batch) => {
                let peers = batch.iter().map(ToString::to_string).collect();
                return Some((ndjson(&types::PeersLine::Peers { peers }), Some(stream)));
            }
            None => match stream.finish().await {
                Ok(r) => types::PeersLine::Done(peers_result(info_hash, &r)),
                Err(e) => types::PeersLine::Error(ApiError::from(e).body),
            },
        };
        Some((ndjson(&line), None))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn ndjson<T: Serialize>(value: &T) -> Result<Bytes, std::io::Error> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

async fn announce(State(s): State<AppState>, body: Bytes) -> ApiResult<types::Announced> {
    let req: types::AnnounceRequest = json_body(&body)?;
    let info_hash: InfoHash = parse::id("info_hash", &req.info_hash).map_err(bad)?;
    if req.port == Some(0) {
        return Err(bad(
            "port must be 1 to 65535 (leave it out for the DHT port)".to_owned(),
        ));
    }
    let r = s.dht.announce(info_hash, req.port).await?;
    Ok(axum::Json(types::Announced {
        info_hash: info_hash.to_string(),
        stored_at: types::nodes(&r.closest),
        lookup: types::Lookup::from(&r.stats),
    }))
}

async fn unannounce(
    State(s): State<AppState>,
    Path(infohash): Path<String>,
) -> ApiResult<types::Unannounced> {
    let info_hash: InfoHash = parse::id("INFOHASH", &infohash).map_err(bad)?;
    if s.dht.unannounce(info_hash).await? {
        Ok(axum::Json(types::Unannounced {
            info_hash: info_hash.to_string(),
        }))
    } else {
        Err(ApiError::not_found(
            format!("{info_hash} is not announced by this node"),
            None,
        ))
    }
}

/// The bencoded value of a put request: exactly one of `value_hex` and `value_utf8`.
fn value_of(value_hex: Option<&str>, value_utf8: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match (value_hex, value_utf8) {
        (Some(h), None) => {
            parse::bencoded("value_hex", parse::hex_bytes("value_hex", h).map_err(bad)?)
                .map_err(bad)
        }
        (None, Some(t)) => parse::byte_string("value_utf8", t.as_bytes()).map_err(bad),
        _ => Err(bad(
            "give exactly one of value_hex (bencoded bytes, hex) and value_utf8 (text)".to_owned(),
        )),
    }
}

fn salt_of(salt: Option<&str>, salt_hex: Option<&str>) -> Result<Vec<u8>, ApiError> {
    let bytes = match (salt, salt_hex) {
        (Some(t), None) => t.as_bytes().to_vec(),
        (None, Some(h)) => parse::hex_bytes("salt_hex", h).map_err(bad)?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => {
            return Err(bad(
                "give at most one of salt (text) and salt_hex".to_owned()
            ));
        }
    };
    parse::salt("salt", bytes).map_err(bad)
}

async fn put_immutable(State(s): State<AppState>, body: Bytes) -> ApiResult<types::Stored> {
    let req: types::PutImmutable = json_body(&body)?;
    let value = value_of(req.value_hex.as_deref(), req.value_utf8.as_deref())?;
    let r = s.dht.put_immutable(value).await?;
    Ok(axum::Json(types::Stored {
        target: r.target.to_string(),
        public_key: None,
        seq: None,
        stored_at: types::nodes(&r.stored_at),
    }))
}

async fn put_mutable(State(s): State<AppState>, body: Bytes) -> ApiResult<types::Stored> {
    let req: types::PutMutable = json_body(&body)?;
    let seed = parse::hex_array::<32>("seed_hex", &req.seed_hex).map_err(bad)?;
    let salt = salt_of(req.salt.as_deref(), req.salt_hex.as_deref())?;
    let value = value_of(req.value_hex.as_deref(), req.value_utf8.as_deref())?;
    let keypair = Keypair::from_seed(seed);
    let public_key = keypair.public_key();
    let r = s
        .dht
        .put_mutable(keypair, salt, value, req.seq, req.cas)
        .await?;
    Ok(axum::Json(types::Stored {
        target: r.target.to_string(),
        public_key: Some(public_key.to_string()),
        seq: r.seq,
        stored_at: types::nodes(&r.stored_at),
    }))
}

fn item_body(target: NodeId, value: &[u8]) -> types::Item {
    let display = RawValue::new(value)
        .ok()
        .and_then(|raw| xorro_wire::value::Value::parse(&raw).ok())
        .map_or_else(|| hex::encode(value), |v| v.to_string());
    types::Item {
        target: target.to_string(),
        value_hex: hex::encode(value),
        value_utf8: parse::utf8_of(value),
        value_display: display,
        public_key: None,
        salt_hex: None,
        seq: None,
        signature: None,
    }
}

async fn get_immutable(
    State(s): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<types::Item> {
    let target: NodeId = parse::id("TARGET", &target).map_err(bad)?;
    match s.dht.get_immutable(target).await? {
        Some(value) => Ok(axum::Json(item_body(target, &value))),
        None => Err(ApiError::not_found(
            format!("no node holds the item {target}"),
            Some("items expire after 2 hours unless their publisher puts them again"),
        )),
    }
}

async fn get_mutable(
    State(s): State<AppState>,
    Path(pubkey): Path<String>,
    Query(q): Query<types::MutableQuery>,
) -> ApiResult<types::Item> {
    let key = parse::public_key("PUBKEY", &pubkey).map_err(bad)?;
    let salt = salt_of(q.salt.as_deref(), q.salt_hex.as_deref())?;
    let target = xorro_wire::bep44::mutable_target(&key, Some(&salt));
    match s.dht.get_mutable(key, salt.clone()).await? {
        Some(item) => {
            let mut body = item_body(target, &item.value);
            body.public_key = Some(key.to_string());
            body.salt_hex = Some(hex::encode(&salt));
            body.seq = Some(item.seq);
            body.signature = Some(hex::encode(item.signature.0));
            Ok(axum::Json(body))
        }
        None => Err(ApiError::not_found(
            format!("no node holds a mutable item of key {key} with this salt"),
            Some("check the key and the salt; items expire after 2 hours unless put again"),
        )),
    }
}

async fn samples(
    State(s): State<AppState>,
    Path(target): Path<String>,
) -> ApiResult<types::Samples> {
    let target: NodeId = parse::id("TARGET", &target).map_err(bad)?;
    let samples = s.dht.sample_infohashes(target).await?;
    Ok(axum::Json(types::Samples {
        target: target.to_string(),
        samples: samples.iter().map(ToString::to_string).collect(),
    }))
}

async fn metrics_text(State(s): State<AppState>) -> Result<Response, ApiError> {
    let st = s.dht.status().await?;
    let text = metrics::encode(&st).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded",
            None,
        )
    })?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn documented_routes() -> BTreeSet<(String, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("docs/openapi.yaml exists");
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).expect("docs/openapi.yaml is YAML");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "an OpenAPI 3 document"
        );
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_mapping().expect("paths") {
            let path = path.as_str().expect("a path").to_owned();
            for (method, _) in item.as_mapping().expect("path item") {
                let method = method.as_str().expect("a method").to_uppercase();
                if ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
                    .contains(&method.as_str())
                {
                    out.insert((method, path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn openapi_describes_exactly_the_routes() {
        let served: BTreeSet<(String, String)> = routes()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(served.len(), routes().len(), "no route listed twice");
        let documented = documented_routes();
        let missing: Vec<_> = served.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&served).collect();
        assert!(
            missing.is_empty(),
            "served but not in docs/openapi.yaml: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "in docs/openapi.yaml but not served: {stale:?}"
        );
    }

    async fn call(app: &Router, method: Method, uri: &str, body: &str) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn test_node() -> Dht {
        Dht::builder()
            .bind(["127.0.0.1:0".parse().unwrap()])
            .public_bootstrap(false)
            .start()
            .await
            .unwrap()
    }

    /// Every listed route is served by the router built from the list: bad parameters get
    /// the handler's 400, never the fallback's 404 or a 405.
    #[tokio::test]
    async fn every_route_is_served() {
        let dht = test_node().await;
        let app = router(dht.clone());
        for r in routes() {
            let uri = r
                .path
                .replace("{id}", "x")
                .replace("{infohash}", "x")
                .replace("{target}", "x")
                .replace("{pubkey}", "x");
            let (status, body) = call(&app, r.method.clone(), &uri, "").await;
            assert!(
                !body.contains("no route"),
                "{} {uri}: {status} {body}",
                r.method
            );
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{} {uri}", r.method);
            if uri.contains("/x") || r.method == Method::POST {
                assert_eq!(
                    status,
                    StatusCode::BAD_REQUEST,
                    "{} {uri}: {body}",
                    r.method
                );
                let e: ErrorBody = serde_json::from_str(&body).unwrap();
                assert!(!e.error.is_empty());
            } else {
                assert_eq!(status, StatusCode::OK, "{} {uri}: {body}", r.method);
            }
        }
        let (status, body) = call(&app, Method::GET, "/v1/nothing", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("openapi"));
        dht.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn bad_input_says_what_is_expected() {
        let dht = test_node().await;
        let app = router(dht.clone());
        let (status, body) = call(&app, Method::GET, "/v1/peers/0123456789ab", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.contains("INFOHASH must be 40 hex digits, got 12 characters"),
            "{body}"
        );
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/immutable",
            r#"{"value_hex":"6934"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("bencoded"), "{body}");
        let (status, body) = call(
            &app,
            Method::POST,
            "/v1/immutable",
            r#"{"value_utf8":"a","value_hex":"6934326"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let big = format!(r#"{{"value_utf8":"{}"}}"#, "x".repeat(1000));
        let (status, body) = call(&app, Method::POST, "/v1/immutable", &big).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("at most 1000"), "{body}");
        let (status, _) = call(
            &app,
            Method::POST,
            "/v1/mutable",
            r#"{"seed_hex":"00","value_utf8":"a"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = call(
            &app,
            Method::DELETE,
            "/v1/announce/0123456789abcdef0123456789abcdef01234567",
            "",
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        dht.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let dht = test_node().await;
        let app = router(dht.clone());
        let (status, body) = call(&app, Method::GET, "/metrics", "").await;
        assert_eq!(status, StatusCode::OK);
        for name in [
            "xorro_packets_in_total ",
            "xorro_packets_out_total ",
            "xorro_queries_total{method=\"ping\"} ",
            "xorro_drops_total{reason=\"rate_limited\"} ",
            "xorro_socket_errors_total{kind=\"send_failed\"} ",
            "xorro_timeouts_total ",
            "xorro_lookups_started_total ",
            "xorro_rebootstraps_total ",
            "xorro_late_answers_total ",
            "xorro_late_silences_total ",
            "xorro_lookup_duration_seconds_bucket{le=\"+Inf\"} ",
            "xorro_lookup_duration_seconds_count ",
            "xorro_routing_table_contacts{family=\"ipv4\"} ",
            "xorro_store_entries{kind=\"peers\"} ",
        ] {
            assert!(body.contains(name), "no {name} in\n{body}");
        }
        assert!(body.trim_end().ends_with("# EOF"));
        dht.shutdown().await.unwrap();
    }
}
