//! The emulator's own routes under `/_emulator/` (never a Graph path): liveness and readiness.
//! Unknown paths below it get a Graph-style 404.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::http::{ApiError, RequestContext};

/// Adds the admin scope to an app.
pub fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/_emulator")
            .route("/health", web::get().to(health))
            .route("/ready", web::get().to(ready))
            .default_service(web::to(unknown)),
    );
}

/// The process is up.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Every tenant is recovered: recovery finishes before the server starts listening, so a
/// server that answers is ready.
async fn ready() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
}

async fn unknown(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!(
        "No emulator route {} {}.",
        req.method(),
        req.path()
    ))
    .respond(&RequestContext::of(&req))
}
