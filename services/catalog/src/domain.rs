//! Types and rules of the catalog, free of storage and transport.

/// Identifiers with parsing constructors.
pub mod ids;
/// Channel listings.
pub mod listing;
/// Reading listing upload rows.
pub mod listing_rows;
/// Clients and channels.
pub mod master;
/// Products, prices and patches.
pub mod product;
/// Reading product upload rows.
pub mod product_rows;
/// The product upload template.
pub mod template;

pub use ids::{ChannelCode, ChannelKind, ClientId, Sku};
pub use listing::{Listing, Resolved};
pub use master::{Channel, Client};
pub use product::{Mrp, Product, ProductAttributes, ProductPatch, TextField};
pub use template::UploadMode;
