//! Reading JSON text fast and strictly: the one-pass scanner the Qlik decoder and the row indexer
//! share (`scan`), and the SSE2 helpers behind it (`simd`: UTF-8 validation, finding the next
//! byte that ends a plain string run).

pub(crate) mod scan;
pub(crate) mod simd;
