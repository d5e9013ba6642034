//! AWS errors and how each protocol renders them.

use crate::xml::escape_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFault {
    Sender,
    Receiver,
}

impl ErrorFault {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorFault::Sender => "Sender",
            ErrorFault::Receiver => "Receiver",
        }
    }
}

/// An error as a client sees it.
///
/// `json_type` is the modern shape name sent as `__type` in JSON protocols;
/// `query_code` is the legacy Query code, sent in Query XML and, for
/// awsQueryCompatible services, in the `x-amzn-query-error` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{json_type}: {message}")]
pub struct AwsError {
    pub status: u16,
    pub json_type: String,
    pub query_code: String,
    pub message: String,
    pub fault: ErrorFault,
}

impl AwsError {
    pub fn new(status: u16, json_type: &str, query_code: &str, message: impl Into<String>) -> Self {
        let fault = if status >= 500 { ErrorFault::Receiver } else { ErrorFault::Sender };
        AwsError {
            status,
            json_type: json_type.to_owned(),
            query_code: query_code.to_owned(),
            message: message.into(),
            fault,
        }
    }

    /// Header value for awsQueryCompatible JSON services: `<legacy code>;<fault>`.
    pub fn query_error_header(&self) -> String {
        format!("{};{}", self.query_code, self.fault.as_str())
    }

    /// JSON 1.0/1.1 body.
    pub fn json_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.json_type,
            "message": self.message,
        }))
        .unwrap_or_default()
    }

    /// Query protocol `<ErrorResponse>` body in the service's XML namespace.
    pub fn query_xml_body(&self, xmlns: &str, request_id: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape_text(xmlns),
            self.fault.as_str(),
            escape_text(&self.query_code),
            escape_text(&self.message),
            escape_text(request_id)
        )
        .into_bytes()
    }
}
