//! Fuzz bodies of the `env_config` module's targets.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{Config, ExternalInputs, FileRead, merge_env, parse_env_file};

const MARKER: &str = "zz-secret-marker-9c1";
const SECRET_VARS: &[&str] = &["ADMIN_API_KEY", "CLI_PROXY_API_KEY", "CLIPROXY_MGMT_KEY"];

/// Fuzz body of `env_config`: the input is an env file; the resulting map validates without
/// panicking, and with every secret variable (and every variable a provider's `auth.env`
/// names) set to a marker, no issue or warning contains it.
pub fn env_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let pairs = parse_env_file(&text);
    let env = merge_env(&BTreeMap::new(), &pairs);
    let inputs = ExternalInputs {
        providers_file: Some(FileRead::Contents(text.clone().into_owned())),
    };
    let _ = Config::from_env(&env, &inputs);

    if text.contains(MARKER) {
        return;
    }
    let mut marked = env.clone();
    let mut names: Vec<String> = SECRET_VARS.iter().map(|s| (*s).to_owned()).collect();
    names.extend(auth_env_names(marked.get("PROVIDERS_JSON")));
    for (i, name) in names.iter().enumerate() {
        if marked.contains_key(name) {
            marked.insert(name.clone(), format!("{MARKER}-{i}"));
        }
    }
    let lines: Vec<String> = match Config::from_env(&marked, &inputs) {
        Ok((_, warnings)) => warnings.iter().map(ToString::to_string).collect(),
        Err(e) => vec![e.to_string()],
    };
    for line in lines {
        assert!(!line.contains(MARKER), "a secret reached a message: {line}");
    }
}

fn auth_env_names(doc: Option<&String>) -> Vec<String> {
    let Some(Ok(doc)) = doc.map(|d| serde_json::from_str::<Value>(d)) else {
        return Vec::new();
    };
    doc.get("providers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("auth")?.get("env")?.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/env_config");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap() != ".keep")
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }

    #[test]
    fn committed_corpus_replays() {
        let inputs = corpus();
        assert!(inputs.len() >= 4, "seed corpus is missing");
        for input in inputs {
            super::env_config(&input);
        }
    }

    proptest! {
        #[test]
        fn mutated_corpus_keeps_the_oracle(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), insert in "[{}\\[\\]\",:a-z0-9=\\n \\\\]{0,6}") {
            let inputs = corpus();
            let mut input = inputs[pick.index(inputs.len())].clone();
            let at = cut.index(input.len() + 1);
            input.splice(at..at, insert.bytes());
            super::env_config(&input);
        }
    }
}
