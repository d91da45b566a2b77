//! Kosha's gRPC contracts, generated once for every service from `proto/`.
//!
//! Modules mirror the proto packages: `kosha::catalog::v1`, `kosha::r#type::v1`, … The
//! [`FILE_DESCRIPTOR_SET`] feeds server reflection, so `grpcurl` can list, describe and
//! call every service, and decode the `google.rpc` error details Kosha attaches.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/module_tree.rs"));

/// Encoded `FileDescriptorSet` of every Kosha proto and everything it imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kosha_descriptor.bin"));

/// Kosha's common types (`kosha.type.v1`), under a name that needs no raw identifier.
pub use kosha::r#type::v1 as types;
