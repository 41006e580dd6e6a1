//! What a sender of a CloudEvent is told (HTTP or the bus): a status and the JSON body the
//! plain endpoints would give, and whether it is kept for the event's replays.

use serde_json::{Map, Value};

use super::error::{error_body, Code, CodedError};

/// What the sender is told: an HTTP status and the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn error(code: Code, message: &str, details: Map<String, Value>) -> Answer {
        Answer {
            status: code.http_status(),
            body: error_body(code, message, details),
        }
    }

    pub fn of(e: &dyn CodedError) -> Answer {
        let code = e.code();
        if code.is_fault() {
            tracing::error!(error = %e, code = code.as_str(), "cloudevent failed");
        }
        Answer::error(code, &e.public_message(), e.details())
    }

    /// Whether the sender should send it again later (a fault or a rate limit), rather than
    /// being told for good.
    pub fn is_transient(&self) -> bool {
        self.status >= 500 || self.status == 429
    }

    /// Whether the answer follows from the event alone, and so is kept for its replays: a
    /// success, or a refusal of what the event says (invalid, not eligible, a conflict). A
    /// refusal of who sent it (401, 403), of where (404) or of when (a trial not recruiting, a
    /// fault) is not kept: the same event may succeed when sent again.
    pub fn is_final(&self) -> bool {
        if (200..300).contains(&self.status) {
            return true;
        }
        let code = self.body["error"]["code"].as_str().unwrap_or("");
        [
            Code::MalformedJson,
            Code::InvalidCloudEvent,
            Code::InvalidEnrolment,
            Code::InvalidRequest,
            Code::InvalidEvents,
            Code::NotEligible,
            Code::AlreadyRandomised,
            Code::RecordConflict,
            Code::EventConflict,
        ]
        .iter()
        .any(|c| c.as_str() == code)
    }
}
