//! The control-socket protocol: one newline-terminated JSON request per connection, one
//! newline-terminated JSON response back, then the server closes.
//!
//! Actions sent with `wait_secs` (and `log`) stream progress before the answer: zero or more
//! `{"version":1,"ok":true,"progress":"..."}` lines, then the final response line.
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
    /// Re-read the config file. Result: `ReloadReport`; an error lists the config problems.
    Reload,
    /// The running configuration with every default resolved. Result: `ConnList`.
    #[serde(rename = "list-conns")]
    ListConns,
    /// Stream log lines (as progress lines) at `level` or more severe, until the client
    /// goes away. No final result.
    Log {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        level: Option<String>,
    },
}

/// A request: the version plus the command fields, flat in one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
    /// initiate/terminate/rekey: wait this long for the outcome, streaming progress;
    /// absent: answer as soon as the action is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_secs: Option<u64>,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request {
            version: PROTOCOL_VERSION,
            command,
            wait_secs: None,
        }
    }

    /// An action that waits up to `secs` for its outcome and streams what happens.
    pub fn waiting(command: Command, secs: u64) -> Request {
        Request {
            wait_secs: Some(secs),
            ..Request::new(command)
        }
    }

    /// The answer streams progress lines before the final one.
    pub fn streams(&self) -> bool {
        self.wait_secs.is_some() || matches!(self.command, Command::Log { .. })
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
        let wait_secs = match fields.remove("wait_secs") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                RequestError::BadCommand("\"wait_secs\" must be a whole number".into())
            })?),
        };
        let command: Command = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| RequestError::BadCommand(e.to_string()))?;
        Ok(Request {
            version: PROTOCOL_VERSION,
            command,
            wait_secs,
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
    /// A line of a streamed answer; more lines follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
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
                progress: None,
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
            progress: None,
        }
    }

    /// One line of a streamed answer (not the final response).
    pub fn progress(line: impl Into<String>) -> Response {
        Response {
            version: PROTOCOL_VERSION,
            ok: true,
            result: None,
            error: None,
            progress: Some(line.into()),
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

/// Result of `reload`: what the new config changed in the running gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Connections whose SAs were untouched.
    pub unchanged: Vec<String>,
    /// Changed in place without touching SAs (routes, BGP policy), with what changed.
    pub updated: Vec<String>,
    /// Torn down and started again (their SAs were deleted).
    pub restarted: Vec<String>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Global settings that only take effect after a restart of the daemon.
    #[serde(default)]
    pub need_restart: Vec<String>,
}

/// Result of `list-conns`: each connection's settings, every default resolved, as
/// `[section] key = value` rows in config-file order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnList {
    pub connections: Vec<ConnSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnSettings {
    pub name: String,
    /// (section, key, value as TOML), e.g. ("connection.children.net", "rekey_time", "\"1h\"").
    pub settings: Vec<(String, String, String)>,
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
            Command::Reload,
            Command::ListConns,
            Command::Log { level: None },
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
    fn waiting_requests_and_progress_lines() {
        let req = Request::waiting(
            Command::Initiate {
                name: "azure".into(),
            },
            30,
        );
        assert_eq!(
            req.to_json(),
            r#"{"version":1,"command":"initiate","name":"azure","wait_secs":30}"#
        );
        assert_eq!(Request::from_json(&req.to_json()), Ok(req.clone()));
        assert!(req.streams());
        assert!(!Request::new(Command::Status).streams());
        assert!(
            Request::from_json(r#"{"version":1,"command":"status","wait_secs":"x"}"#)
                .unwrap_err()
                .to_string()
                .contains("wait_secs")
        );
        assert_eq!(
            Response::progress("sending IKE_SA_INIT").to_json(),
            r#"{"version":1,"ok":true,"progress":"sending IKE_SA_INIT"}"#
        );
        let r = Request::from_json(r#"{"version":1,"command":"list-conns"}"#).unwrap();
        assert_eq!(r.command, Command::ListConns);
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
