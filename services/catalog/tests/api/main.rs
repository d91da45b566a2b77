//! The catalog over real gRPC, on SQLite and PostgreSQL.

mod concurrency;
mod helpers;
mod isolation;
mod listings;
mod master;
mod products;
mod real_file;
mod resolutions;
mod upload_corpus;
