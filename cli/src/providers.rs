//! `providers show|path|init` (`control.md` §11.2, §11.7).
//!
//! Choices where the spec is silent: `show` needs a valid configuration (the list is the
//! validated merge); the JSON form lists every field of a provider with `auth.value` as
//! `[redacted]` when a token is configured and the env name as written; header values are
//! shown as `[redacted]` too, because operators put credentials there.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use agent_cli_proxy_core::config::{Config, Paths};
use agent_cli_proxy_core::provider::direct::{routing_json, routing_table};
use agent_cli_proxy_core::provider::{Provider, ProviderSource};
use serde_json::{Value, json};

use crate::args::ProvidersCommand;
use crate::{CliError, CmdResult, env, fsutil};

/// Runs one `providers` subcommand.
pub(crate) fn run(process: &BTreeMap<String, String>, cmd: ProvidersCommand) -> CmdResult {
    let loaded = env::load(process, None)?;
    match cmd {
        ProvidersCommand::Show { json } => show(&loaded.vars, json),
        ProvidersCommand::Path => {
            crate::out_line!("{}", source_line(&loaded.vars));
            Ok(ExitCode::SUCCESS)
        }
        ProvidersCommand::Init { path, force } => init(&loaded.vars, path, force),
    }
}

fn show(vars: &BTreeMap<String, String>, as_json: bool) -> CmdResult {
    let (config, warnings) = env::load_config(vars)?;
    env::print_warnings(&warnings);
    let providers = &config.providers;
    if as_json {
        let list: Vec<Value> = providers.list().iter().map(|p| provider_json(p)).collect();
        let source = match providers.source() {
            ProviderSource::BuiltIn => json!({"kind": "built-in"}),
            ProviderSource::Inline => json!({"kind": "PROVIDERS_JSON"}),
            ProviderSource::File { path } => json!({"kind": "file", "path": path}),
        };
        crate::out_line!(
            "{}",
            env::pretty(&json!({
                "providers": list,
                "source": source,
                "router": config.has_router().then_some(&config.cli_proxy_api_url),
                "routing": routing_json(&routing_table(providers)),
            }))
        );
    } else {
        crate::out_line!("id\ttype\tpaths\tmodels\tauth");
        for p in providers.list() {
            let auth = match &p.auth.env {
                Some(name) => format!("{} (env {name})", p.auth.mode.as_str()),
                None => p.auth.mode.as_str().to_owned(),
            };
            let models = if p.models.is_empty() {
                "-".to_owned()
            } else {
                p.models.join(",")
            };
            crate::out_line!(
                "{}\t{}\t{}\t{}\t{}",
                p.id,
                p.kind.as_str(),
                p.paths.join(","),
                models,
                auth
            );
        }
        // After the spec's tab-separated list, so scripts reading it are not disturbed.
        crate::out_line!("");
        for line in routing_lines(&config) {
            crate::out_line!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The active routing as an aligned text table: which path goes to which provider and URL,
/// with whose key; the last line says what happens to every other path.
pub(crate) fn routing_lines(config: &Config) -> Vec<String> {
    let lines = routing_table(&config.providers);
    let rows: Vec<[String; 5]> = lines
        .iter()
        .map(|l| {
            let models = if l.models.is_empty() {
                "*".to_owned()
            } else {
                l.models.join(",")
            };
            [
                l.path.clone(),
                models,
                l.provider.clone(),
                l.upstream.clone(),
                l.auth.clone(),
            ]
        })
        .collect();
    let header = ["PATH", "MODELS", "PROVIDER", "UPSTREAM", "AUTH"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let render = |r: &[String; 5]| {
        let mut out = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out
    };
    let mode = if config.has_router() {
        format!("Routing (router {}):", config.cli_proxy_api_url)
    } else {
        "Routing (direct mode, no router):".to_owned()
    };
    let mut out = vec![mode, render(&header)];
    out.extend(rows.iter().map(render));
    out
}

fn provider_json(p: &Provider) -> Value {
    let mut auth = serde_json::Map::new();
    auth.insert("type".into(), json!(p.auth.mode.as_str()));
    if let Some(env) = &p.auth.env {
        auth.insert("env".into(), json!(env));
    }
    if let Some(header) = &p.auth.header {
        auth.insert("header".into(), json!(header));
    }
    if p.auth.token.is_some() {
        auth.insert("value".into(), json!("[redacted]"));
    }
    let headers: serde_json::Map<String, Value> = p
        .headers
        .iter()
        .map(|(k, _)| (k.clone(), json!("[redacted]")))
        .collect();
    json!({
        "id": p.id,
        "type": p.kind.as_str(),
        "paths": p.paths,
        "upstreamBaseUrl": p.upstream_base_url,
        "upstreamPath": p.upstream_path,
        "models": p.models,
        "headers": headers,
        "auth": auth,
        "stripProviderField": p.strip_provider_field,
    })
}

/// `PROVIDERS_JSON inline`, the trimmed `PROVIDERS_CONFIG_PATH`, or the no-providers line.
fn source_line(vars: &BTreeMap<String, String>) -> String {
    let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if get("PROVIDERS_JSON").is_some() {
        "PROVIDERS_JSON inline".to_owned()
    } else if let Some(p) = get("PROVIDERS_CONFIG_PATH") {
        p.to_owned()
    } else {
        "(no custom providers configured)".to_owned()
    }
}

fn init(vars: &BTreeMap<String, String>, path: Option<PathBuf>, force: bool) -> CmdResult {
    let path = match path {
        Some(p) => p,
        None => match vars
            .get("PROVIDERS_CONFIG_PATH")
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(Paths::from_env(vars).providers_file),
        },
    };
    let path = env::absolute(&path)?;
    if path.exists() && !force {
        return Err(CliError::Runtime(format!(
            "{} already exists; use --force to overwrite",
            path.display()
        )));
    }
    let mut text = env::pretty(&starter());
    text.push('\n');
    if force {
        let _ = std::fs::remove_file(&path);
    }
    fsutil::write_private_atomic(&path, text.as_bytes())?;
    crate::out_line!("Created providers config: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// The starter document of §11.7.
fn starter() -> Value {
    json!({
        "providers": [
            {
                "id": "local",
                "type": "openai-compatible",
                "paths": ["/v1/chat/completions"],
                "upstreamBaseUrl": "http://localhost:11434",
                "upstreamPath": "/v1/chat/completions",
                "models": ["llama", "qwen"],
                "auth": "none"
            },
            {
                "id": "glm",
                "type": "openai-compatible",
                "paths": ["/v1/chat/completions"],
                "upstreamBaseUrl": "https://open.bigmodel.cn/api/paas/v4",
                "models": ["glm"],
                "auth": {"type": "bearer", "env": "GLM_API_KEY"}
            },
            {
                "id": "gemini-direct",
                "type": "gemini",
                "paths": ["/v1beta/models/"],
                "upstreamBaseUrl": "https://generativelanguage.googleapis.com",
                "models": ["gemini"],
                "auth": "preserve"
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_document_validates() {
        let env = BTreeMap::new();
        let doc = agent_cli_proxy_core::provider::validate_document(&starter(), &env);
        assert_eq!(doc.issues, vec![]);
        let ids: Vec<&str> = doc.providers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["local", "glm", "gemini-direct"]);
        let unreachable: Vec<_> = doc
            .warnings
            .iter()
            .filter(|w| w.to_string().contains("unreachable"))
            .collect();
        assert_eq!(
            unreachable,
            Vec::<&_>::new(),
            "every starter path is reachable"
        );
        let gemini = &doc.providers[2];
        assert!(gemini.serves("/v1beta/models/gemini-2.5-pro:streamGenerateContent"));
    }
}
