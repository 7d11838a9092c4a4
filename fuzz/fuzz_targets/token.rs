//! The bearer-token decoder of lenient auth: any `Authorization` value gives a tenant or a
//! Graph 401/403, never a panic.
#![no_main]

use actix_web::http::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use userflows_emulator::http::auth::tenant_of;
use userflows_emulator::http::{Access, Authenticator};

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(bytes) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, value);
    if let Ok(tenant) = tenant_of(&headers, &Authenticator::Lenient, Access::Read) {
        assert!(!tenant.as_str().is_empty());
    }
});
