//! The ceiling for benchmarks: an actix-web server that reads a POST body and answers a fixed
//! `201`, doing no work, so the emulator's throughput can be stated as a ratio of it.
//!
//! By default the fixed answer has the shape and size of the emulator's answer to a create
//! (the same headers, a `Location` and a body of the same length), so the load generator, which
//! shares the machine, parses the same bytes from both. `--bare` answers the shorter `201` the
//! ceiling used before (four headers, a 67-byte body), kept as a reference.

use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};
use userflows_emulator::http::JSON_CONTENT_TYPE;

const USAGE: &str = "usage: noop-server [ADDRESS] [--bare]   (ADDRESS defaults to 127.0.0.1:8090)";

/// An id as long as the ones `loadtests/wrk/create.lua` sends, with the `B2C_1_` prefix.
const ID: &str = "B2C_1_b0123456789abt1n123456";

/// A request id as the emulator makes one (a hyphenated UUID, fresh there, fixed here).
const REQUEST_ID: &str = "6f1d2c3b-4a59-4e87-9d6c-5b4a39281706";

/// The answer, built once.
struct Answer {
    bare: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Answer {
    fn graph_shaped(address: &str) -> Result<Self, String> {
        let base = format!("http://{address}");
        let value =
            |text: String| HeaderValue::from_str(&text).map_err(|e| format!("{text:?}: {e}"));
        let headers = vec![
            (
                HeaderName::from_static("request-id"),
                HeaderValue::from_static(REQUEST_ID),
            ),
            (CONTENT_TYPE, JSON_CONTENT_TYPE),
            (
                HeaderName::from_static("client-request-id"),
                HeaderValue::from_static(REQUEST_ID),
            ),
            (
                LOCATION,
                value(format!("{base}/beta/identity/userFlows/{ID}"))?,
            ),
            (
                HeaderName::from_static("odata-version"),
                HeaderValue::from_static("4.0"),
            ),
        ];
        let body = format!(
            r#"{{"@odata.context":"{base}/beta/$metadata#identity/userFlows/$entity","id":"{ID}","userFlowType":"signUpOrSignIn","userFlowTypeVersion":1}}"#
        );
        Ok(Self {
            bare: false,
            headers,
            body: Bytes::from(body),
        })
    }

    fn bare() -> Self {
        Self {
            bare: true,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body: Bytes::from_static(
                br#"{"id":"B2C_1_noop","userFlowType":"signUp","userFlowTypeVersion":1}"#,
            ),
        }
    }
}

/// `body`: the extractor reads the whole body before the handler runs, as the emulator does.
async fn created(body: web::Bytes, answer: web::Data<Answer>) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::CREATED);
    for (name, value) in &answer.headers {
        response.insert_header((name.clone(), value.clone()));
    }
    if answer.bare {
        // The short answer as it always was, with the body's length in a header.
        response.insert_header(("x-body-bytes", body.len().to_string()));
    }
    response.body(answer.body.clone())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut address = "127.0.0.1:8090".to_owned();
    let mut bare = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bare" => bare = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            _ if arg.starts_with('-') => {
                eprintln!("noop-server: unknown flag {arg}\n{USAGE}");
                std::process::exit(2);
            }
            _ => address = arg,
        }
    }
    let answer = if bare {
        Answer::bare()
    } else {
        Answer::graph_shaped(&address).map_err(std::io::Error::other)?
    };
    let answer = web::Data::new(answer);
    HttpServer::new(move || {
        App::new()
            .app_data(answer.clone())
            .default_service(web::to(created))
    })
    .bind(address)?
    .run()
    .await
}
