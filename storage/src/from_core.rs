//! Storage commands from the core's exchange operations: the exchange decides every column,
//! this module only maps its values onto the writer's command types.

use agent_cli_proxy_core::exchange::{self as ex, StorageOp};

use crate::op::{AuditInfo, FinalizeRow, Op};

/// The writer command for an exchange's storage operation.
pub fn op_from_exchange(op: StorageOp) -> Op {
    match op {
        StorageOp::PreLog(row) => Op::PreLog(row),
        StorageOp::CheckpointUsage { row_id, columns } => Op::CheckpointUsage {
            id: row_id,
            tokens: columns,
        },
        StorageOp::Finalize(row) => Op::Finalize(Box::new(finalize(*row))),
        StorageOp::FinalizeFallback {
            row_id,
            message,
            at,
        } => Op::FinalizeFallback {
            id: row_id,
            message,
            now: at,
        },
    }
}

fn finalize(r: ex::FinalizeRow) -> FinalizeRow {
    FinalizeRow {
        id: r.row_id,
        lifecycle_status: r.lifecycle_status,
        actual_model: r.actual_model,
        actual_provider: r.actual_provider,
        proxy_api_key_id: r.proxy_api_key_id,
        streamed: r.streamed,
        status: Some(i64::from(r.status)),
        tokens: r.columns,
        usage_incomplete: r.usage_incomplete,
        cost_nanousd: r.cost_nanousd,
        cost_status: r.cost_status,
        error_code: r.error_code.map(str::to_owned),
        error_message: r.error_message,
        latency_ms: i64::try_from(r.latency_ms).ok(),
        now: r.finished_at,
        meta_json: r.meta_json,
        audit: AuditInfo {
            model: Some(r.audit_model),
            provider: Some(r.provider),
            source: r.audit_source.to_owned(),
        },
    }
}
