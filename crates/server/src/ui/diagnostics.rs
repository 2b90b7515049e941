//! (being written)

use crate::http::routes::RouteSpec;

pub fn routes() -> Vec<RouteSpec> {
    Vec::new()
}
