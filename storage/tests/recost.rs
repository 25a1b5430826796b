//! `CoreRecoster` through boot recovery: the worked examples W1 and W3 of `accounting.md` §7
//! re-costed from checkpointed row columns, with the convention taken from the provider type
//! (the pre-logged `meta_json` has no `usage_convention`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/helpers.rs"]
mod helpers;

use std::sync::Arc;

use agent_cli_proxy_core::pricing::{Aliases, Overrides, Price, PriceTable, Pricer, Rates};
use agent_cli_proxy_core::provider::Providers;
use agent_cli_proxy_core::usage::TokenColumns;
use agent_cli_proxy_storage::{CoreRecoster, Op, Reply, SharedPricer};
use helpers::*;

fn sonnet_pricer() -> Pricer {
    let sonnet = Price {
        base: Rates {
            input: 3_000_000,
            output: 15_000_000,
            cache_read: Some(300_000),
            cache_write: Some(3_750_000),
        },
        reasoning: None,
        tiers: Vec::new(),
    };
    Pricer::new(
        Arc::new(PriceTable::from_entries([(
            "anthropic/claude-sonnet-4-5".to_owned(),
            sonnet,
        )])),
        Overrides::none(),
        Aliases::none(),
    )
}

#[test]
fn boot_recovery_costs_w1_and_w3_from_their_columns() {
    let (_dir, path) = temp_db();
    let mut store = migrated(&path);
    let w1 = TokenColumns {
        prompt_tokens: 1_000,
        completion_tokens: 500,
        total_tokens: 1_500,
        ..TokenColumns::default()
    };
    let w3 = TokenColumns {
        prompt_tokens: 500,
        completion_tokens: 1_000,
        cache_creation_tokens: 30_000,
        cache_write_1h_tokens: 20_000,
        total_tokens: 31_500,
        ..TokenColumns::default()
    };
    let mut ids = Vec::new();
    for (at, t) in [
        ("2026-05-04T10:00:00.000Z", w1),
        ("2026-05-04T11:00:00.000Z", w3),
    ] {
        let Reply::RowId(id) = store
            .execute(Op::PreLog(Box::new(prelog(
                "anthropic",
                "claude-sonnet-4-5",
                at,
            ))))
            .unwrap()
        else {
            panic!("no row id");
        };
        store
            .execute(Op::CheckpointUsage { id, tokens: t })
            .unwrap();
        ids.push(id);
    }
    let recoster = CoreRecoster::new(
        SharedPricer::new(sonnet_pricer()),
        &Providers::built_in("http://127.0.0.1:8317"),
    );
    let reply = store
        .execute(Op::BootRecovery {
            now: "2026-05-05T00:00:00.000Z".into(),
            recoster: Arc::new(recoster),
        })
        .unwrap();
    assert_eq!(reply, Reply::Count(2));
    for (id, expected) in ids.iter().zip([10_500_000i64, 174_000_000]) {
        let row = store.log_by_id(*id).unwrap().unwrap();
        assert_eq!(row.cost_nanousd, expected);
        assert_eq!(row.cost_status, "ok");
        let audits = store.cost_audit(*id).unwrap().unwrap();
        assert_eq!(audits.len(), 1);
        assert_eq!(audits[0].cost_nanousd, Some(expected));
        assert_eq!(audits[0].model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(audits[0].source.as_deref(), Some("pricing"));
    }
    let day = store.usage_today("2026-05-04").unwrap();
    assert_eq!(day.cost_nanousd, 184_500_000);
    assert_eq!(day.total_tokens, 33_000);
    assert_aggregate(&store);
}
