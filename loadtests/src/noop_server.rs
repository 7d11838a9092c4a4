//! The ceiling for benchmarks: an actix-web server that reads a POST body and answers a fixed
//! `201`, doing no work, so the emulator's throughput can be stated as a ratio of it.

use actix_web::{web, App, HttpResponse, HttpServer};

async fn created(body: web::Bytes) -> HttpResponse {
    // Touch the body so the handler pays for reading it, like the emulator does.
    let len = body.len();
    HttpResponse::Created()
        .content_type("application/json")
        .insert_header(("x-body-bytes", len.to_string()))
        .body(r#"{"id":"B2C_1_noop","userFlowType":"signUp","userFlowTypeVersion":1}"#)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    HttpServer::new(|| App::new().default_service(web::to(created)))
        .bind(addr)?
        .run()
        .await
}
