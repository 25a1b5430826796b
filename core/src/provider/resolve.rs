//! Resolution of a request to a provider (`datapath.md` §9.3).

use std::sync::Arc;

use super::{
    AuthMode, Provider, ProviderAuth, ProviderOrigin, ProviderType, Providers, Resolved,
    UnknownProvider,
};

/// The fixed model-prefix table of step 3; it wins over provider prefixes of equal length.
const FIXED_PREFIXES: &[(&str, &str)] = &[
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("chatgpt", "openai"),
    ("grok", "xai"),
    ("kimi", "kimi"),
    ("k2", "kimi"),
    ("glm", "glm"),
    ("minimax", "minimax"),
    // `gemini.md` §4: Gemini models are priced under models.dev's `google`.
    ("gemini", "google"),
];

pub(super) fn resolve(
    providers: &Providers,
    path: &str,
    model: Option<&str>,
    selector: Option<&str>,
) -> Result<Resolved, UnknownProvider> {
    if let Some(sel) = selector.filter(|s| !s.is_empty()) {
        return providers
            .list
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(sel) && p.serves(path))
            .map(|p| Resolved {
                provider: Arc::clone(p),
            })
            .ok_or_else(|| UnknownProvider { id: sel.to_owned() });
    }
    let candidates: Vec<&Arc<Provider>> =
        providers.list.iter().filter(|p| p.serves(path)).collect();
    let chosen = model
        .filter(|m| !m.is_empty())
        .and_then(|m| best_prefix_candidate(&candidates, m))
        .or_else(|| candidates.iter().copied().find(|p| p.models.is_empty()))
        .or_else(|| candidates.first().copied());
    let provider = match chosen {
        Some(p) => Arc::clone(p),
        None => Arc::new(synthesize(providers, path, model)),
    };
    Ok(Resolved { provider })
}

/// Among candidates with models, the one with the longest matching prefix; ties go to custom
/// providers, then to list order (candidates are in list order and only a strictly better
/// key replaces the current best).
fn best_prefix_candidate<'a>(
    candidates: &[&'a Arc<Provider>],
    model: &str,
) -> Option<&'a Arc<Provider>> {
    let mut best: Option<(usize, bool, &'a Arc<Provider>)> = None;
    for &p in candidates {
        let Some(len) = p
            .models
            .iter()
            .filter(|prefix| starts_with_ignore_case(model, prefix))
            .map(|prefix| prefix.len())
            .max()
        else {
            continue;
        };
        let custom = p.origin == ProviderOrigin::Custom;
        let better = match best {
            None => true,
            Some((best_len, best_custom, _)) => (len, custom) > (best_len, best_custom),
        };
        if better {
            best = Some((len, custom, p));
        }
    }
    best.map(|(_, _, p)| p)
}

fn synthesize(providers: &Providers, path: &str, model: Option<&str>) -> Provider {
    let id = model_provider_id(providers, model);
    let kind = if id == "anthropic" {
        ProviderType::Anthropic
    } else {
        ProviderType::OpenAiCompatible
    };
    Provider {
        id,
        kind,
        paths: vec![path.to_owned()],
        upstream_base_url: providers.cli_proxy_api_url.clone(),
        upstream_path: Some(path.to_owned()),
        models: Vec::new(),
        headers: Vec::new(),
        auth: ProviderAuth {
            mode: AuthMode::Preserve,
            ..ProviderAuth::default()
        },
        strip_provider_field: false,
        origin: ProviderOrigin::Synthesized,
    }
}

pub(super) fn model_provider_id(providers: &Providers, model: Option<&str>) -> String {
    let Some(model) = model.filter(|m| !m.is_empty()) else {
        return "generic".to_owned();
    };
    let lower = model.to_ascii_lowercase();
    if let Some(slash) = lower.find('/').filter(|&i| i > 0) {
        let part = &lower[..slash];
        if let Some(p) = providers
            .list
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case(part))
        {
            return p.id.clone();
        }
        if part == "anthropic" || part == "openai" {
            return part.to_owned();
        }
    }
    let mut best: Option<(usize, &str)> = None;
    let provider_prefixes = providers
        .list
        .iter()
        .flat_map(|p| p.models.iter().map(move |m| (m.as_str(), p.id.as_str())));
    for (prefix, id) in FIXED_PREFIXES.iter().copied().chain(provider_prefixes) {
        if starts_with_ignore_case(&lower, prefix) && best.is_none_or(|(len, _)| prefix.len() > len)
        {
            best = Some((prefix.len(), id));
        }
    }
    best.map_or_else(|| "generic".to_owned(), |(_, id)| id.to_owned())
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}
