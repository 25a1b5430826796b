//! Fuzz bodies of the `provider_config` module's targets.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{Config, ExternalInputs};
use crate::provider::{ProviderSource, Providers, validate_document};

const MARKER: &str = "zz-secret-marker-7f3";

/// Fuzz body of `provider_config`: any document validates without panicking, the merged list
/// resolves without panicking, and no issue or warning contains an `auth.value`.
pub fn provider_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut env = BTreeMap::new();
    env.insert(
        "CLI_PROXY_API_URL".to_owned(),
        "http://127.0.0.1:8317".to_owned(),
    );
    env.insert("FUZZ_TOKEN".to_owned(), MARKER.to_owned());
    env.insert("PROVIDERS_JSON".to_owned(), text.clone().into_owned());
    let _ = Config::from_env(&env, &ExternalInputs::default());

    let Ok(mut doc) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    if text.contains(MARKER) {
        return; // the document could name the marker itself (as a key or env name)
    }
    plant_markers(&mut doc);
    let checked = validate_document(&doc, &env);
    for line in checked
        .issues
        .iter()
        .map(ToString::to_string)
        .chain(checked.warnings.iter().map(ToString::to_string))
    {
        assert!(!line.contains(MARKER), "a secret reached a message: {line}");
    }
    env.insert("PROVIDERS_JSON".to_owned(), doc.to_string());
    if let Err(e) = Config::from_env(&env, &ExternalInputs::default()) {
        assert!(
            !e.to_string().contains(MARKER),
            "a secret reached the error"
        );
    }
    let providers = Providers::merged(
        "http://127.0.0.1:8317",
        checked.providers,
        ProviderSource::Inline,
    );
    assert!(!providers.admin_json().to_string().contains(MARKER));
    let models = [None, Some("claude-x"), Some("GLM-4"), Some("a/b"), Some("")];
    for p in providers.list().iter().flat_map(|p| p.paths.clone()) {
        for model in models {
            let _ = providers.resolve(&p, model, None);
            let _ = providers.resolve(&p, model, Some("openai"));
        }
    }
}

/// Replaces every `providers[*].auth.value` string with the marker.
fn plant_markers(doc: &mut Value) {
    let Some(entries) = doc.get_mut("providers").and_then(Value::as_array_mut) else {
        return;
    };
    for entry in entries {
        if let Some(value) = entry.get_mut("auth").and_then(|a| a.get_mut("value"))
            && value.is_string()
        {
            *value = Value::String(MARKER.to_owned());
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::disallowed_methods,
    reason = "the test replays committed fixture files; reading them is the test's IO, not the core's"
)]
mod tests {
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/provider_config"
        );
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
            super::provider_config(&input);
        }
    }

    proptest! {
        #[test]
        fn mutated_corpus_keeps_the_oracle(pick in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>(), insert in "[{}\\[\\]\",:a-z0-9=\\n \\\\]{0,6}") {
            let inputs = corpus();
            let mut input = inputs[pick.index(inputs.len())].clone();
            let at = cut.index(input.len() + 1);
            input.splice(at..at, insert.bytes());
            super::provider_config(&input);
        }
    }
}
