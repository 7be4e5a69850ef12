//! The host backend API under /v1/server: the service key, every route with a good and a bad
//! body, GET bodies from the query string, and seed 001's consultation flow end to end.

mod consultation;
pub(crate) mod routes;
mod users;
