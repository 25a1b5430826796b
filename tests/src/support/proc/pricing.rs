//! The pricing fixture: a small models.dev-like `api.json` with the price table of
//! `accounting.md` §7 (`claude-sonnet-4-5` with its 200 000-token tier, `gpt-5`) and a few
//! other models, served to the proxy as `PRICING_URL=file:///…`.

use std::io;
use std::path::{Path, PathBuf};

/// The fixture document. Prices are USD per million tokens, as models.dev writes them.
pub const PRICING_API_JSON: &str = r#"{
  "anthropic": {
    "id": "anthropic",
    "name": "Anthropic",
    "models": {
      "claude-sonnet-4-5": {
        "id": "claude-sonnet-4-5",
        "name": "Claude Sonnet 4.5",
        "cost": {
          "input": 3, "output": 15, "cache_read": 0.3, "cache_write": 3.75,
          "context_over_200k": { "input": 6, "output": 22.5, "cache_read": 0.6, "cache_write": 7.5 }
        }
      },
      "claude-opus-4-1": {
        "id": "claude-opus-4-1",
        "name": "Claude Opus 4.1",
        "cost": { "input": 15, "output": 75, "cache_read": 1.5, "cache_write": 18.75 }
      },
      "claude-haiku-4-5": {
        "id": "claude-haiku-4-5",
        "name": "Claude Haiku 4.5",
        "cost": { "input": 1, "output": 5, "cache_read": 0.1, "cache_write": 1.25 }
      }
    }
  },
  "openai": {
    "id": "openai",
    "name": "OpenAI",
    "models": {
      "gpt-5": {
        "id": "gpt-5",
        "name": "GPT-5",
        "cost": { "input": 1.25, "output": 10, "cache_read": 0.125 }
      },
      "gpt-5-mini": {
        "id": "gpt-5-mini",
        "name": "GPT-5 Mini",
        "cost": { "input": 0.25, "output": 2, "cache_read": 0.025 }
      },
      "gpt-4o": {
        "id": "gpt-4o",
        "name": "GPT-4o",
        "cost": { "input": 2.5, "output": 10, "cache_read": 1.25 }
      }
    }
  },
  "google": {
    "id": "google",
    "name": "Google",
    "models": {
      "gemini-2.5-pro": {
        "id": "gemini-2.5-pro",
        "name": "Gemini 2.5 Pro",
        "cost": {
          "input": 1.25, "output": 10, "cache_read": 0.31,
          "tiers": [ { "tier": { "type": "context", "size": 200000 }, "input": 2.5, "output": 15, "cache_read": 0.625 } ]
        }
      }
    }
  },
  "ollama": {
    "id": "ollama",
    "name": "Ollama",
    "models": {
      "llama3.2": { "id": "llama3.2", "name": "Llama 3.2", "cost": { "input": 0, "output": 0 } }
    }
  }
}
"#;

/// Writes [`PRICING_API_JSON`] to `<dir>/api.json` and returns the file's path.
pub fn write_pricing_fixture(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("api.json");
    std::fs::write(&path, PRICING_API_JSON)?;
    Ok(path)
}

/// `file:///abs/path` for an absolute `path` (the form `PRICING_URL` accepts).
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_is_valid_json_with_the_worked_example_prices() {
        let doc: serde_json::Value = serde_json::from_str(PRICING_API_JSON).expect("valid JSON");
        let sonnet = &doc["anthropic"]["models"]["claude-sonnet-4-5"]["cost"];
        assert_eq!(sonnet["input"], 3);
        assert_eq!(sonnet["cache_write"], 3.75);
        assert_eq!(sonnet["context_over_200k"]["output"], 22.5);
        assert_eq!(
            doc["openai"]["models"]["gpt-5"]["cost"]["cache_read"],
            0.125
        );
    }
}
