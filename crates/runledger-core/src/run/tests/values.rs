//! The value newtypes: what each accepts, what it refuses, and how it is written.

use std::str::FromStr;

use serde_json::json;

use super::*;
use crate::error::ParseError;
use crate::ids::EventId;

/// The field a parse error names, or `None` when parsing succeeded.
fn refused_field<T>(result: Result<T, ParseError>) -> Option<&'static str> {
    result.err().map(|e| e.field)
}

#[test]
fn run_type_accepts_the_taxonomy() {
    for text in [
        "inventory.sync",
        "restore.execute",
        "backup.schedule_run",
        "policy.v2.capture",
        "a.b",
        "a.b.c.d.e.f.g.h",
    ] {
        let parsed = RunType::parse(text).expect(text);
        assert_eq!(parsed.as_str(), text);
        assert_eq!(parsed.to_string(), text);
        assert_eq!(RunType::from_str(text).ok(), Some(parsed));
    }
    let longest = format!("{}.b", "a".repeat(RunType::MAX_LEN - 2));
    assert!(RunType::parse(&longest).is_ok());
}

#[test]
fn run_type_refuses_anything_else() {
    let overlong = format!("{}.b", "a".repeat(RunType::MAX_LEN - 1));
    for text in [
        "Inventory.sync",
        "inventory",
        "inventory..sync",
        ".inventory.sync",
        "inventory.sync.",
        "1x.y",
        "x.1y",
        "_x.y",
        "inventory-sync.run",
        "inventory.sync ",
        "inventory.sÿnc",
        "a.b.c.d.e.f.g.h.i",
        "",
        &overlong,
    ] {
        assert_eq!(
            refused_field(RunType::parse(text)),
            Some("type"),
            "{text:?}"
        );
    }
    assert!(serde_json::from_value::<RunType>(json!("Inventory.sync")).is_err());
}

#[test]
fn run_type_serializes_as_its_text_and_has_a_display_name() {
    let run_type = RunType::parse("inventory.sync").expect("valid");
    assert_eq!(
        serde_json::to_value(&run_type).ok(),
        Some(json!("inventory.sync"))
    );
    assert_eq!(
        serde_json::from_value::<RunType>(json!("inventory.sync")).ok(),
        Some(run_type.clone())
    );
    assert_eq!(run_type.display_name(), "Inventory sync");
    assert_eq!(
        RunType::parse("backup.schedule_run")
            .expect("valid")
            .display_name(),
        "Backup schedule run"
    );
}

#[test]
fn tenant_and_user_ids_are_positive() {
    for value in [0, -1, i64::MIN] {
        assert_eq!(refused_field(TenantId::new(value)), Some("tenant_id"));
        assert_eq!(refused_field(UserId::new(value)), Some("user_id"));
        assert!(serde_json::from_value::<TenantId>(json!(value)).is_err());
        assert!(serde_json::from_value::<UserId>(json!(value)).is_err());
    }
    for text in ["0", "-3", "abc", "", "1.5", "9223372036854775808"] {
        assert_eq!(
            refused_field(TenantId::from_str(text)),
            Some("tenant_id"),
            "{text:?}"
        );
        assert_eq!(
            refused_field(UserId::from_str(text)),
            Some("user_id"),
            "{text:?}"
        );
    }
    for value in [1, 42, i64::MAX] {
        let tenant = TenantId::new(value).expect("positive");
        assert_eq!(tenant.get(), value);
        assert_eq!(i64::from(tenant), value);
        assert_eq!(TenantId::from_str(&tenant.to_string()).ok(), Some(tenant));
        assert_eq!(serde_json::to_value(tenant).ok(), Some(json!(value)));
        assert_eq!(UserId::new(value).map(UserId::get).ok(), Some(value));
    }
}

#[test]
fn uuid_ids_parse_and_display() {
    let uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0054);
    let run = RunId::from_uuid(uuid);
    assert_eq!(run.as_uuid(), uuid);
    assert_eq!(run.to_string(), "01900000-0000-7000-8000-000000000054");
    assert_eq!(RunId::from_str(&run.to_string()).ok(), Some(run));
    assert_eq!(refused_field(RunId::from_str("not-a-uuid")), Some("run_id"));
    assert_eq!(refused_field(EventId::from_str("")), Some("event_id"));
    assert_eq!(
        serde_json::to_value(run).ok(),
        Some(json!("01900000-0000-7000-8000-000000000054"))
    );
    assert_eq!(EventId::from(uuid).as_uuid(), uuid);
}

#[test]
fn system_initiator_is_named_system_with_no_user() {
    let system = Initiator::system();
    assert_eq!(system.name, "System");
    assert_eq!(system.user_id, None);
    assert_eq!(
        serde_json::to_value(&system).ok(),
        Some(json!({"user_id": null, "name": "System"}))
    );
}

#[test]
fn user_initiator_trims_its_name() {
    let user = UserId::new(7).expect("positive");
    let initiator = Initiator::user(user, "  Ahmed Darrazi\t").expect("a valid name");
    assert_eq!(initiator.user_id, Some(user));
    assert_eq!(initiator.name, "Ahmed Darrazi");
    let longest = "é".repeat(Initiator::MAX_NAME_CHARS);
    assert_eq!(
        Initiator::user(user, &longest).map(|i| i.name).ok(),
        Some(longest)
    );
}

#[test]
fn user_initiator_refuses_empty_overlong_and_control_characters() {
    let user = UserId::new(7).expect("positive");
    let overlong = "é".repeat(Initiator::MAX_NAME_CHARS + 1);
    for name in [
        "",
        "   ",
        "\t\n",
        "Ahmed\u{0}",
        "Ah\nmed",
        "Ahmed\u{1b}[31m",
        &overlong,
    ] {
        assert_eq!(
            refused_field(Initiator::user(user, name)),
            Some("initiator.name"),
            "{name:?}"
        );
    }
}

#[test]
fn failure_codes_are_short_and_plain() {
    for text in ["graph.throttled", "other", "HTTP_429", "a:b-c_d.e", "x"] {
        assert_eq!(
            FailureCode::parse(text).map(|c| c.as_str().to_owned()).ok(),
            Some(text.to_owned())
        );
    }
    assert!(FailureCode::parse(&"a".repeat(100)).is_ok());
    for text in [
        "",
        "graph throttled",
        "graph/throttled",
        "é",
        "a\n",
        &"a".repeat(101),
    ] {
        assert_eq!(
            refused_field(FailureCode::parse(text)),
            Some("failures.code"),
            "{text:?}"
        );
    }
    assert!(serde_json::from_value::<FailureCode>(json!("has space")).is_err());
    assert_eq!(
        serde_json::to_value(code("graph.throttled")).ok(),
        Some(json!("graph.throttled"))
    );
}

#[test]
fn identity_hash_parses_and_displays_as_lowercase_hex() {
    let hex = "e51b876fc8aa4f8084e71e479f745509cc846de29c430dd5c56505aeeadf9c91";
    let hash: RunIdentityHash = hex.parse().expect("64 hex digits");
    assert_eq!(hash.to_string(), hex);
    assert_eq!(hash.to_hex(), hex);
    assert_eq!(hash.as_bytes()[0], 0xe5);
    assert_eq!(hash.as_bytes()[31], 0x91);
    assert_eq!(format!("{hash:?}"), format!("RunIdentityHash({hex})"));
    assert_eq!(serde_json::to_value(hash).ok(), Some(json!(hex)));
    assert_eq!(
        serde_json::from_value::<RunIdentityHash>(json!(hex)).ok(),
        Some(hash)
    );
    for text in [
        "",
        &hex[..63],
        &format!("{hex}0"),
        &hex.to_uppercase(),
        &format!("g{}", &hex[1..]),
        &format!("{}é", &hex[..62]),
    ] {
        assert_eq!(
            refused_field(text.parse::<RunIdentityHash>()),
            Some("run_identity_hash"),
            "{text:?}"
        );
    }
}

#[test]
fn identity_is_bounded_in_size() {
    // `{"k":"…"}` is 8 bytes plus the string.
    let max = RunIdentity::MAX_CANONICAL_BYTES;
    let fits = json!({"k": "x".repeat(max - 8)});
    assert!(RunIdentity::new(fits).is_ok());
    let too_big = json!({"k": "x".repeat(max - 7)});
    assert_eq!(refused_field(RunIdentity::new(too_big)), Some("identity"));
    assert_eq!(RunIdentity::empty().value(), &json!({}));
}

#[test]
fn statuses_and_outcomes_have_stored_names_and_labels() {
    let statuses: Vec<(&str, &str)> = RunStatus::ALL
        .iter()
        .map(|s| (s.as_str(), s.label()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("queued", "Queued"),
            ("running", "Running"),
            ("completed", "Completed")
        ]
    );
    let outcomes: Vec<(&str, &str)> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str(), o.label()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("pending", "Pending"),
            ("succeeded", "Succeeded"),
            ("partially_succeeded", "Partially succeeded"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ]
    );
    for &outcome in Outcome::ALL {
        assert_eq!(outcome.as_str().parse::<Outcome>().ok(), Some(outcome));
        assert_eq!(
            serde_json::to_value(outcome).ok(),
            Some(json!(outcome.as_str()))
        );
        assert_eq!(
            serde_json::from_value::<Outcome>(json!(outcome.as_str())).ok(),
            Some(outcome)
        );
    }
    for &status in RunStatus::ALL {
        assert_eq!(status.to_string().parse::<RunStatus>().ok(), Some(status));
        assert_eq!(
            serde_json::to_value(status).ok(),
            Some(json!(status.as_str()))
        );
    }
    assert_eq!(
        refused_field("Succeeded".parse::<Outcome>()),
        Some("outcome")
    );
    assert_eq!(refused_field("done".parse::<RunStatus>()), Some("status"));
    let active: Vec<RunStatus> = RunStatus::ALL
        .iter()
        .copied()
        .filter(|s| s.is_active())
        .collect();
    assert_eq!(active, [RunStatus::Queued, RunStatus::Running]);
}

#[test]
fn parse_errors_name_their_field() {
    let error = RunType::parse("Inventory").expect_err("invalid");
    assert!(error.to_string().starts_with("type: "), "{error}");
}

#[test]
fn limits_are_whole_seconds_from_one_second_to_thirty_days() {
    use crate::limits::LimitSeconds;
    for seconds in [1, 60, 2_592_000] {
        let limit = LimitSeconds::parse("run_deadline_seconds", seconds).expect("in bounds");
        assert_eq!(i64::from(limit.get()), seconds);
        assert_eq!(serde_json::to_value(limit).ok(), Some(json!(seconds)));
        assert_eq!(
            serde_json::from_value::<LimitSeconds>(json!(seconds)).ok(),
            Some(limit)
        );
    }
    for seconds in [0, -1, 2_592_001, i64::MAX, i64::MIN] {
        let refused = LimitSeconds::parse("run_deadline_seconds", seconds);
        assert_eq!(
            refused_field(refused),
            Some("run_deadline_seconds"),
            "{seconds}"
        );
    }
    for refused in [json!(0), json!(1.5), json!("60"), json!(2_592_001)] {
        assert!(
            serde_json::from_value::<LimitSeconds>(refused.clone()).is_err(),
            "{refused}"
        );
    }
    assert_eq!(
        LimitSeconds::parse("x", 90)
            .expect("in bounds")
            .after(at(0)),
        Some(at(0) + TimeDelta::seconds(90))
    );
}

#[test]
fn run_limits_name_the_field_out_of_bounds() {
    assert_eq!(
        RunLimits::from_seconds(None, None, None).ok(),
        Some(RunLimits::default())
    );
    let cases = [
        ((Some(0), None, None), "start_deadline_seconds"),
        ((Some(1), Some(-5), None), "run_deadline_seconds"),
        ((None, None, Some(3_000_000)), "heartbeat_timeout_seconds"),
    ];
    for ((start, run, heartbeat), field) in cases {
        assert_eq!(
            refused_field(RunLimits::from_seconds(start, run, heartbeat)),
            Some(field)
        );
    }
    let limits = RunLimits::from_seconds(Some(600), None, Some(30)).expect("in bounds");
    assert_eq!(
        serde_json::to_value(limits).ok(),
        Some(json!({
            "start_deadline_seconds": 600,
            "run_deadline_seconds": null,
            "heartbeat_timeout_seconds": 30,
        }))
    );
}

#[test]
fn worker_ids_are_short_and_plain() {
    let longest = "w".repeat(WorkerId::MAX_LEN);
    for text in [
        "w1",
        "sync-7d9f8-abcde",
        "host-3/pid-4242",
        "worker@host:9",
        "a.b_c",
        &longest,
    ] {
        let id = WorkerId::parse(text).expect(text);
        assert_eq!(id.as_str(), text);
        assert_eq!(id.to_string(), text);
        assert_eq!(text.parse::<WorkerId>().ok(), Some(id.clone()));
        assert_eq!(serde_json::to_value(&id).ok(), Some(json!(text)));
    }
    let overlong = "w".repeat(WorkerId::MAX_LEN + 1);
    for text in [
        "", "w 1", " w1", "w1\n", "wörker", "<b>", "w1;drop", "\u{0}", &overlong,
    ] {
        assert_eq!(
            refused_field(WorkerId::parse(text)),
            Some("worker"),
            "{text:?}"
        );
    }
    assert!(serde_json::from_value::<WorkerId>(json!("w 1")).is_err());
    assert_eq!(
        WorkerId::parse("w 1").map_err(|e| e.to_string()),
        Err("worker: must be 1-128 characters of [A-Za-z0-9._:@/-]".to_owned())
    );
    assert_eq!(
        FailureCode::parse("a b").map_err(|e| e.to_string()),
        Err("failures.code: must be 1-100 characters of [A-Za-z0-9._:-]".to_owned())
    );
}
