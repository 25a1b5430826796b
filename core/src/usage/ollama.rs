//! NDJSON and Ollama usage (`accounting.md` §2.4): the object with `"done": true` carries
//! `prompt_eval_count` and `eval_count`; cached is 0.

use super::detect::Probe;
use super::openai::OpenAiCounts;

/// Counts of a final Ollama object; `None` unless `done` is `true` and at least one of the
/// two counts is present (as in the plain-body detection of §2.5).
pub(crate) fn ollama_counts(p: &Probe<'_>) -> Option<OpenAiCounts> {
    if p.done.0 != Some(true) || !(p.prompt_eval_count.is_number || p.eval_count.is_number) {
        return None;
    }
    Some(OpenAiCounts {
        prompt: p.prompt_eval_count.value,
        cached: Some(0),
        completion: p.eval_count.value,
        reasoning: None,
    })
}
