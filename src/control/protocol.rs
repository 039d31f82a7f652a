//! The control-socket protocol: one newline-terminated JSON request per connection, one
//! newline-terminated JSON response back, then the server closes.
//!
//! ```text
//! -> {"version":1,"command":"status"}
//! <- {"version":1,"ok":true,"result":{"connections":[...]}}
//! -> {"version":1,"command":"rekey","name":"azure","ike":true}
//! <- {"version":1,"ok":false,"error":"no connection named \"azure\""}
//! ```

use super::error::{RequestError, ResponseError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;
/// Requests are tiny; anything bigger is a confused or hostile client.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// Status of many connections plus a full BGP table still fits easily.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// What the client asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase", deny_unknown_fields)]
pub enum Command {
    /// Result: `StatusReport`.
    Status,
    /// Bring a connection up (IKE SA + children). Result: `ActionResult`.
    Initiate { name: String },
    /// Delete a connection's SAs (it stays configured). Result: `ActionResult`.
    Terminate { name: String },
    /// Rekey the IKE SA (`ike = true`) or the CHILD SAs (`ike = false`, the default).
    Rekey {
        name: String,
        #[serde(default)]
        ike: bool,
    },
    /// The BGP RIB, optionally of one connection. Result: `BgpReport`.
    Bgp {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

/// A request: the version plus the command fields, flat in one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request {
            version: PROTOCOL_VERSION,
            command,
        }
    }

    /// Parses one request line. The version is checked before the command so that a newer
    /// client gets "unsupported version" rather than a confusing field error.
    pub fn from_json(text: &str) -> Result<Request, RequestError> {
        let value: serde_json::Value =
            serde_json::from_str(text.trim()).map_err(|e| RequestError::NotJson(e.to_string()))?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(RequestError::NotObject);
        };
        let version = fields
            .remove("version")
            .ok_or(RequestError::NoVersion)?
            .as_u64()
            .ok_or(RequestError::VersionNotNumber)?;
        if version != u64::from(PROTOCOL_VERSION) {
            return Err(RequestError::UnsupportedVersion(version));
        }
        let command: Command = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| RequestError::BadCommand(e.to_string()))?;
        Ok(Request {
            version: PROTOCOL_VERSION,
            command,
        })
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings/bools into JSON cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer: `ok` with a command-specific `result`, or an `error` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success carrying `result` (any Serialize type, e.g. `StatusReport`).
    pub fn ok<T: Serialize>(result: &T) -> Response {
        match serde_json::to_value(result) {
            Ok(value) => Response {
                version: PROTOCOL_VERSION,
                ok: true,
                result: Some(value),
                error: None,
            },
            Err(e) => Response::error(format!("cannot encode result: {e}")),
        }
    }

    pub fn error(message: impl Into<String>) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            ok: false,
            result: None,
            error: Some(message.into()),
        }
    }

    /// Decodes the result of a successful response, or says why there is none.
    pub fn into_result<T: DeserializeOwned>(self) -> Result<T, ResponseError> {
        if !self.ok {
            return Err(ResponseError::Refused(
                self.error
                    .unwrap_or_else(|| "request failed (no error message)".into()),
            ));
        }
        let value = self.result.unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|e| ResponseError::Unexpected(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"version":{PROTOCOL_VERSION},"ok":false,"error":"cannot encode response: {e}"}}"#)
        })
    }
}

/// Result of initiate/terminate/rekey: what the daemon did, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        for cmd in [
            Command::Status,
            Command::Initiate {
                name: "azure".into(),
            },
            Command::Terminate {
                name: "azure".into(),
            },
            Command::Rekey {
                name: "azure".into(),
                ike: true,
            },
            Command::Bgp { name: None },
            Command::Bgp {
                name: Some("azure".into()),
            },
        ] {
            let req = Request::new(cmd);
            assert_eq!(Request::from_json(&req.to_json()), Ok(req));
        }
        assert_eq!(
            Request::new(Command::Status).to_json(),
            r#"{"version":1,"command":"status"}"#
        );
    }

    #[test]
    fn documented_wire_forms() {
        let r = Request::from_json(r#"{"version":1,"command":"rekey","name":"azure"}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Rekey {
                name: "azure".into(),
                ike: false
            }
        );
        let r = Request::from_json(r#"{"version":1,"command":"initiate","name":"azure"}"#).unwrap();
        assert_eq!(
            r.command,
            Command::Initiate {
                name: "azure".into()
            }
        );
    }

    #[test]
    fn bad_requests() {
        let err = |text: &str| Request::from_json(text).unwrap_err();
        assert!(matches!(err("{"), RequestError::NotJson(_)));
        assert!(err("{").to_string().contains("not valid JSON"));
        assert_eq!(err("[]"), RequestError::NotObject);
        assert!(err("[]").to_string().contains("JSON object"));
        assert_eq!(err(r#"{"command":"status"}"#), RequestError::NoVersion);
        assert!(err(r#"{"command":"status"}"#)
            .to_string()
            .contains("no \"version\""));
        assert_eq!(
            err(r#"{"version":2,"command":"status"}"#),
            RequestError::UnsupportedVersion(2)
        );
        assert!(err(r#"{"version":2,"command":"status"}"#)
            .to_string()
            .contains("unsupported"));
        assert!(err(r#"{"version":1,"command":"explode"}"#)
            .to_string()
            .contains("explode"));
        assert!(err(r#"{"version":1,"command":"initiate"}"#)
            .to_string()
            .contains("name"));
    }

    #[test]
    fn responses() {
        let ok = Response::ok(&ActionResult {
            message: "done".into(),
        });
        assert_eq!(
            ok.to_json(),
            r#"{"version":1,"ok":true,"result":{"message":"done"}}"#
        );
        assert_eq!(ok.into_result::<ActionResult>().unwrap().message, "done");
        let err = Response::error("nope");
        assert_eq!(err.to_json(), r#"{"version":1,"ok":false,"error":"nope"}"#);
        assert_eq!(
            err.into_result::<ActionResult>(),
            Err(ResponseError::Refused("nope".into()))
        );
    }
}
