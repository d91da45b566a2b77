//! The one error type of every Kosha service and the one place it becomes a gRPC status.
//!
//! Handlers return [`Error`]; `?` converts database and other infrastructure failures into
//! [`Error::Internal`], which is logged once here with its whole cause chain and sent to the
//! caller masked. Everything a caller can fix carries a precise message: bad input names
//! the field (or row and column) through `google.rpc.BadRequest` details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// A problem with one field (or one row and column) of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `product.mrp` or `rows[12].sku`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Most field violations sent in one status. Trailers share an HTTP/2 header budget with
/// the rest of the response, so a large upload report is cut here and the message says how
/// many more there are; the dry run of the same request returns the full list.
const MAX_VIOLATIONS_IN_STATUS: usize = 100;

/// Most bytes of violations (fields and descriptions) in one status. The details travel
/// base64-encoded in a trailer beside the message, and common gRPC clients refuse a
/// response whose trailers pass 8 KiB (some 16 KiB) with `RESOURCE_EXHAUSTED`, losing the
/// whole report: this leaves room for the message and the encoding's third.
const MOST_VIOLATION_BYTES: usize = 3_500;

/// Longest text of one message sent to a caller. Messages quote the bad value; a caller
/// who sent a megabyte of it needs the start, not all of it back.
const MOST_MESSAGE_CHARS: usize = 2000;

/// Longest field or description of one violation in a status.
const MOST_VIOLATION_CHARS: usize = 400;

/// `text` cut to `most` characters, saying so when cut.
fn bounded(text: String, most: usize) -> String {
    crate::validate::cut_to(&text, most, "… (cut; the message was longer)")
}

/// Every error a Kosha service returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was changed.
    #[error("{message}")]
    InvalidArgument {
        message: String,
        violations: Vec<FieldViolation>,
    },
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already, or an idempotency key was reused for another request.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is valid but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won; the caller may retry.
    #[error("{0}")]
    Aborted(String),
    /// A request or upload is larger than configured limits.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (database, another service) is unreachable for now.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected infrastructure failure; never shown to callers.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of a service operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input in one field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        let violation = FieldViolation::new(field, description);
        let message = format!("invalid `{}`: {}", violation.field, violation.description);
        Self::InvalidArgument {
            message,
            violations: vec![violation],
        }
    }

    /// Bad input in several fields, with a summary message.
    pub fn invalid_many(message: impl Into<String>, violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
            violations,
        }
    }

    /// A missing thing, e.g. `not_found("product", "acme/SKU-1")`.
    pub fn not_found(kind: &str, name: impl std::fmt::Display) -> Self {
        Self::NotFound(format!("{kind} `{name}` not found"))
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable("the database is not reachable right now; retry".into())
            }
            _ => Self::Internal(anyhow::Error::new(error)),
        }
    }
}

impl From<Status> for Error {
    /// A failed call to another service: client errors pass through with their code (the
    /// caller sent us something the other service refused), transport trouble becomes
    /// `UNAVAILABLE`, and anything else is internal.
    fn from(status: Status) -> Self {
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument {
                message,
                violations: Vec::new(),
            },
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::FailedPrecondition => Self::FailedPrecondition(message),
            Code::Aborted => Self::Aborted(message),
            Code::ResourceExhausted => Self::ResourceExhausted(message),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                Self::Unavailable(format!("a dependency is unavailable: {message}"))
            }
            _ => Self::Internal(anyhow::anyhow!("dependency failed: {status:?}")),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument {
                message,
                violations,
            } => {
                let mut details = ErrorDetails::new();
                let mut budget = MOST_VIOLATION_BYTES;
                let mut shown = 0;
                for violation in violations.iter().take(MAX_VIOLATIONS_IN_STATUS) {
                    let field = bounded(violation.field.clone(), MOST_VIOLATION_CHARS);
                    let description = bounded(violation.description.clone(), MOST_VIOLATION_CHARS);
                    // A few bytes of framing per violation besides its text.
                    let cost = field.len() + description.len() + 8;
                    if cost > budget {
                        break;
                    }
                    budget -= cost;
                    details.add_bad_request_violation(field, description);
                    shown += 1;
                }
                let message = if violations.len() > shown {
                    format!(
                        "{message} ({} more problems not listed; a dry run reports them all)",
                        violations.len() - shown
                    )
                } else {
                    message
                };
                Status::with_error_details(
                    Code::InvalidArgument,
                    bounded(message, MOST_MESSAGE_CHARS),
                    details,
                )
            }
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                Status::internal("internal error; the cause is in the server log")
            }
            other => Status::new(other.code(), bounded(other.to_string(), MOST_MESSAGE_CHARS)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_bad_value_comes_back_cut() {
        let huge = "9".repeat(200_000);

        let status = Status::from(Error::invalid(
            "price",
            format!("`{huge}` is not an amount"),
        ));
        let not_found = Status::from(Error::not_found("order", &huge));

        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().len() < 10_000,
            "{}",
            status.message().len()
        );
        assert!(status.message().ends_with("(cut; the message was longer)"));
        let details = status.get_error_details();
        let violation = &details.bad_request().unwrap().field_violations[0];
        assert_eq!(violation.field, "price");
        assert!(violation.description.len() < 10_000);
        assert!(not_found.message().len() < 10_000);
    }

    #[test]
    fn a_long_report_fits_the_trailer_budget_of_common_clients() {
        let violations = (1..=300)
            .map(|row| {
                FieldViolation::new(
                    format!("rows[{row}].sku"),
                    format!(
                        "`{}-{row:05}!` has a character a SKU cannot hold",
                        "Z".repeat(40)
                    ),
                )
            })
            .collect();

        let status = Status::from(Error::invalid_many("300 rows are wrong", violations));

        let mut headers = tonic::metadata::MetadataMap::new().into_headers();
        status.add_header(&mut headers).unwrap();
        let trailer_bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        assert!(
            trailer_bytes < 8 * 1024,
            "{trailer_bytes} bytes of trailers"
        );
        let details = status.get_error_details();
        let shown = details.bad_request().unwrap().field_violations.len();
        assert!(shown >= 30, "only {shown} rows listed");
        assert!(
            status
                .message()
                .contains(&format!("{} more problems not listed", 300 - shown)),
            "{}",
            status.message()
        );
    }
}
