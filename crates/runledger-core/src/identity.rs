//! The run identity and its hash: the key that keeps one active run per tenant and identity.
//!
//! The hash is SHA-256 over the RFC 8785 (JCS) canonical JSON of
//! `{"identity": …, "tenant_id": …, "type": …}`, hex-encoded in lowercase.
//! JCS fixes key order, whitespace and number formatting, so the same inputs give the same hash
//! on every machine, forever; the fixed vectors in `tests-vectors/identity-hash.json`, computed
//! without this crate and checked by `run/tests/identity_vectors.rs`, hold it to that.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::ids::TenantId;
use crate::run_type::RunType;

/// The identity inputs of a run: any JSON value that names "the same work"
/// (e.g. `{"restore_run_id": 123}`); `{}` means one active run per tenant and type.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIdentity(Value);

impl RunIdentity {
    /// The largest accepted identity, in bytes of canonical JSON.
    pub const MAX_CANONICAL_BYTES: usize = 4096;

    /// The largest integer JCS writes exactly: it writes every number as an IEEE double, so
    /// integers past 2^53 - 1 would round, and distinct identities would share a hash.
    pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

    /// Accepts any JSON value up to the size limit whose integers JCS writes exactly.
    ///
    /// # Errors
    /// [`ParseError`] naming `identity` when its canonical form is larger than 4 KiB, or when it
    /// holds an integer beyond ±(2^53 - 1) (send such ids as strings).
    pub fn new(value: Value) -> Result<Self, ParseError> {
        if has_unsafe_integer(&value) {
            return Err(ParseError::new(
                "identity",
                "integers must be within ±(2^53 - 1); send larger ids as strings",
            ));
        }
        let canonical = canonical_json(&value);
        if canonical.len() > Self::MAX_CANONICAL_BYTES {
            return Err(ParseError::new(
                "identity",
                "must be at most 4096 bytes of JSON",
            ));
        }
        Ok(Self(value))
    }

    /// The default identity `{}`: one active run per tenant and type.
    pub fn empty() -> Self {
        Self(Value::Object(serde_json::Map::new()))
    }

    /// The identity inputs.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The dedupe key of a run of `run_type` for `tenant` with this identity.
    pub fn hash(&self, tenant: TenantId, run_type: &RunType) -> RunIdentityHash {
        let document = json!({
            "identity": self.0,
            "tenant_id": tenant.get(),
            "type": run_type.as_str(),
        });
        RunIdentityHash(Sha256::digest(canonical_json(&document)).into())
    }
}

/// Whether `value` holds an integer that JCS cannot write exactly (RFC 8785 section 3.2.2.3).
fn has_unsafe_integer(value: &Value) -> bool {
    match value {
        Value::Number(number) => {
            let magnitude = number
                .as_u64()
                .or_else(|| number.as_i64().map(i64::unsigned_abs));
            magnitude.is_some_and(|m| m > RunIdentity::MAX_SAFE_INTEGER)
        }
        Value::Array(items) => items.iter().any(has_unsafe_integer),
        Value::Object(map) => map.values().any(has_unsafe_integer),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

/// RFC 8785 canonical JSON bytes of a value.
///
/// Serializing a `serde_json::Value` cannot fail (its keys are strings), so the error arm is
/// unreachable; it falls back to serde_json's own (sorted-key) encoding rather than panic.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).unwrap_or_else(|_| value.to_string().into_bytes())
}

/// SHA-256 of a run's canonical identity document, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunIdentityHash([u8; 32]);

impl RunIdentityHash {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The lowercase hex form, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for RunIdentityHash {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError::new("run_identity_hash", "must be 64 lowercase hex digits");
        if s.len() != 64 || s.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for RunIdentityHash {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        value.parse()
    }
}

impl From<RunIdentityHash> for String {
    fn from(value: RunIdentityHash) -> String {
        value.to_hex()
    }
}

impl fmt::Display for RunIdentityHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for RunIdentityHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunIdentityHash({})", self.to_hex())
    }
}
