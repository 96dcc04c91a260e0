//! Fixed vectors of the run identity hash, computed independently of this crate.
//!
//! The vectors live in `crates/runledger-core/tests-vectors/identity-hash.json`.
//! Each case gives the tenant, the type, the identity as JSON text, the canonical document
//! written by hand per RFC 8785 (JCS), and the SHA-256 of that document.
//! They were produced with Python's `hashlib`, never with this crate, by this script:
//!
//! ```python
//! # Independent computation of run identity hash vectors: canonical JSON written by hand per RFC 8785.
//! import hashlib, json
//! cases = [
//!     # (name, tenant_id, type, identity_json as fed to the crate, canonical document written by hand)
//!     ("empty identity", 1, "inventory.sync", '{}',
//!      '{"identity":{},"tenant_id":1,"type":"inventory.sync"}'),
//!     ("restore run id", 42, "restore.execute", '{"restore_run_id":123}',
//!      '{"identity":{"restore_run_id":123},"tenant_id":42,"type":"restore.execute"}'),
//!     ("keys given b then a", 7, "inventory.sync", '{"b":1,"a":2}',
//!      '{"identity":{"a":2,"b":1},"tenant_id":7,"type":"inventory.sync"}'),
//!     ("keys given a then b", 7, "inventory.sync", '{"a":2,"b":1}',
//!      '{"identity":{"a":2,"b":1},"tenant_id":7,"type":"inventory.sync"}'),
//!     ("unicode strings, escapes and UTF-16 key order", 3, "backup.create",
//!      '{"\uff5a":"fullwidth z","\ud83d\ude00":"grinning","\u00e9":"Z\u00fcrich \u20ac","z":"tab\\there","a":"quote \\" and \\\\ and \\u001f"}',
//!      '{"identity":{"a":"quote \\" and \\\\ and \\u001f","z":"tab\\there","\u00e9":"Z\u00fcrich \u20ac","\ud83d\ude00":"grinning","\uff5a":"fullwidth z"},"tenant_id":3,"type":"backup.create"}'),
//!     ("number written 1.0", 5, "inventory.sync", '{"n":1.0}',
//!      '{"identity":{"n":1},"tenant_id":5,"type":"inventory.sync"}'),
//!     ("number written 1", 5, "inventory.sync", '{"n":1}',
//!      '{"identity":{"n":1},"tenant_id":5,"type":"inventory.sync"}'),
//!     ("number formats", 5, "inventory.sync", '{"big":1e21,"small":1e-7,"half":0.5,"neg_zero":-0.0,"hundred":1E2,"neg":-12}',
//!      '{"identity":{"big":1e+21,"half":0.5,"hundred":100,"neg":-12,"neg_zero":0,"small":1e-7},"tenant_id":5,"type":"inventory.sync"}'),
//!     ("nested arrays", 9007, "policy.snapshot.capture",
//!      '{"selection":[[1,2],[],["a",{"k":null,"b":true}]],"flags":[false]}',
//!      '{"identity":{"flags":[false],"selection":[[1,2],[],["a",{"b":true,"k":null}]]},"tenant_id":9007,"type":"policy.snapshot.capture"}'),
//! ]
//! out = []
//! for name, tenant, typ, ident, canonical in cases:
//!     # Python reads the surrogate-pair escapes in these literals as two code points; join them.
//!     ident = ident.encode("utf-16", "surrogatepass").decode("utf-16")
//!     canonical = canonical.encode("utf-16", "surrogatepass").decode("utf-16")
//!     # Sanity: the identity text is valid JSON.
//!     json.loads(ident)
//!     out.append({
//!         "name": name, "tenant_id": tenant, "type": typ, "identity": ident,
//!         "canonical": canonical,
//!         "expected_hex": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
//!     })
//! print(json.dumps(out, ensure_ascii=False, indent=2))
//! ```
//!
//! The hashes are a stored format (the dedupe index holds them): a failing vector is a bug or a
//! migration, never a reason to regenerate the file.

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::identity::canonical_json;

/// The vectors file.
#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Vector>,
}

/// One fixed vector.
#[derive(Deserialize)]
struct Vector {
    name: String,
    tenant_id: i64,
    #[serde(rename = "type")]
    run_type: String,
    /// The identity as JSON text, parsed by serde_json as the API would.
    identity: String,
    /// The canonical document, written by hand.
    canonical: String,
    expected_hex: String,
}

fn vectors() -> Vec<Vector> {
    let text = include_str!("../../../tests-vectors/identity-hash.json");
    let vectors: Vectors = serde_json::from_str(text).expect("the vectors file is valid");
    vectors.cases
}

fn hash_of(tenant: i64, run_type: &str, identity: Value) -> RunIdentityHash {
    RunIdentity::new(identity).expect("a valid identity").hash(
        TenantId::new(tenant).expect("positive"),
        &RunType::parse(run_type).expect("a valid type"),
    )
}

#[test]
fn identity_hash_matches_the_fixed_vectors() {
    let vectors = vectors();
    assert!(vectors.len() >= 6);
    for vector in vectors {
        let identity: Value = serde_json::from_str(&vector.identity).expect("valid JSON");
        let document = json!({
            "identity": identity.clone(),
            "tenant_id": vector.tenant_id,
            "type": vector.run_type,
        });
        // The canonical form first: a mismatch there is the easier one to read.
        assert_eq!(
            String::from_utf8(canonical_json(&document)).ok().as_deref(),
            Some(vector.canonical.as_str()),
            "{}",
            vector.name
        );
        let hash = hash_of(vector.tenant_id, &vector.run_type, identity);
        assert_eq!(hash.to_hex(), vector.expected_hex, "{}", vector.name);
    }
}

#[test]
fn queue_stores_the_hash_of_its_tenant_type_and_identity() {
    let RunEvent::Queued(queued) = &decide(&Run::Unqueued, queue()).expect("accepted")[0] else {
        panic!("queue records Queued");
    };
    assert_eq!(queued.run_identity_hash, identity_hash());
    assert_eq!(
        queued.run_identity_hash.to_hex(),
        vectors()[1].expected_hex,
        "the builders use the second vector"
    );
}

#[test]
fn equal_canonical_identities_hash_equal() {
    let cases = [
        (json!({"b": 1, "a": 2}), json!({"a": 2, "b": 1})),
        (json!({"n": 1.0}), json!({"n": 1})),
        (json!({"n": 100}), json!({"n": 1e2})),
        (json!({"n": -0.0}), json!({"n": 0})),
        (json!({"s": "é"}), json!({"s": "e\u{301}"})),
    ];
    for (index, (left, right)) in cases.into_iter().enumerate() {
        let equal = hash_of(1, "inventory.sync", left.clone())
            == hash_of(1, "inventory.sync", right.clone());
        // JCS does not normalize Unicode: precomposed and decomposed é are different identities.
        assert_eq!(equal, index != 4, "{left} vs {right}");
    }
}

#[test]
fn a_different_tenant_type_or_identity_gives_a_different_hash() {
    let base = hash_of(1, "inventory.sync", json!({}));
    assert_ne!(base, hash_of(2, "inventory.sync", json!({})));
    assert_ne!(base, hash_of(1, "inventory.sync_all", json!({})));
    assert_ne!(base, hash_of(1, "restore.execute", json!({})));
    assert_ne!(base, hash_of(1, "inventory.sync", json!([])));
    assert_ne!(base, hash_of(1, "inventory.sync", json!(null)));
    assert_ne!(base, hash_of(1, "inventory.sync", json!({"a": null})));
    assert_ne!(
        hash_of(1, "inventory.sync", json!({"n": 1})),
        hash_of(1, "inventory.sync", json!({"n": "1"}))
    );
    assert_ne!(
        hash_of(1, "inventory.sync", json!([1, 2])),
        hash_of(1, "inventory.sync", json!([2, 1]))
    );
}

#[test]
fn integers_beyond_the_exact_range_of_jcs_are_refused() {
    // JCS writes every number as an IEEE double, so integers past 2^53 - 1 would collide:
    // {"id": 9007199254740993} and {"id": 9007199254740992} would share one dedupe key.
    let largest = 9_007_199_254_740_991_i64;
    for value in [json!(largest), json!(-largest), json!(0)] {
        assert!(RunIdentity::new(json!({"id": value})).is_ok(), "{value}");
    }
    for value in [
        json!(largest + 1),
        json!(largest + 2),
        json!(-largest - 1),
        json!(i64::MIN),
        json!(u64::MAX),
    ] {
        assert_eq!(
            RunIdentity::new(json!({"nested": [{"id": value}]}))
                .err()
                .map(|e| e.field),
            Some("identity"),
            "{value}"
        );
    }
    // Large numbers written as strings are the way to carry them.
    assert!(RunIdentity::new(json!({"id": "9007199254740993"})).is_ok());
}
