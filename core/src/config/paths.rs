//! Default paths (`control.md` §5.2), computed from the environment map only.

use std::collections::BTreeMap;

/// The default locations of the proxy's files.
///
/// Without `HOME` (and without the XDG variable that would replace it), the paths that start
/// at the home directory are relative to the working directory: `.config/agent-cli-proxy`,
/// `data`, `Library/LaunchAgents/...`. Blank variables count as unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// `$HOME`, when set and non-blank.
    pub home: Option<String>,
    /// `$XDG_CONFIG_HOME/agent-cli-proxy`, else `~/.config/agent-cli-proxy`.
    pub config_dir: String,
    /// `$AGENT_CLI_PROXY_DATA_DIR`, else `$XDG_DATA_HOME/agent-cli-proxy`, else
    /// `~/.local/share/agent-cli-proxy`, else `data`.
    pub data_dir: String,
    /// `<config dir>/.env`.
    pub env_file: String,
    /// `DB_PATH` default: `<data dir>/proxy.db`.
    pub db_path: String,
    /// `PRICING_CACHE_PATH` default: `<data dir>/pricing-cache.json`.
    pub pricing_cache_path: String,
    /// `<config dir>/providers.json`.
    pub providers_file: String,
    /// `$XDG_CONFIG_HOME/systemd/user/agent-cli-proxy.service` (XDG default `~/.config`).
    pub systemd_unit: String,
    /// `~/Library/LaunchAgents/ai.agent-cli-proxy.plist`.
    pub launchd_agent: String,
}

impl Paths {
    /// Computes every default path from `env` (`HOME`, `XDG_CONFIG_HOME`, `XDG_DATA_HOME`,
    /// `AGENT_CLI_PROXY_DATA_DIR`).
    pub fn from_env(env: &BTreeMap<String, String>) -> Paths {
        let var = |name: &str| {
            env.get(name)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let home = var("HOME");
        let under_home = |rel: &str| match &home {
            Some(h) => join(h, rel),
            None => rel.to_owned(),
        };
        let xdg_config = var("XDG_CONFIG_HOME").unwrap_or_else(|| under_home(".config"));
        let config_dir = join(&xdg_config, "agent-cli-proxy");
        let data_dir = var("AGENT_CLI_PROXY_DATA_DIR")
            .or_else(|| var("XDG_DATA_HOME").map(|x| join(&x, "agent-cli-proxy")))
            .or_else(|| {
                home.as_ref()
                    .map(|h| join(h, ".local/share/agent-cli-proxy"))
            })
            .unwrap_or_else(|| "data".to_owned());
        Paths {
            env_file: join(&config_dir, ".env"),
            db_path: join(&data_dir, "proxy.db"),
            pricing_cache_path: join(&data_dir, "pricing-cache.json"),
            providers_file: join(&config_dir, "providers.json"),
            systemd_unit: join(&xdg_config, "systemd/user/agent-cli-proxy.service"),
            launchd_agent: under_home("Library/LaunchAgents/ai.agent-cli-proxy.plist"),
            home,
            config_dir,
            data_dir,
        }
    }
}

fn join(dir: &str, rel: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        format!("/{rel}")
    } else {
        format!("{dir}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn home_only() {
        let p = Paths::from_env(&env(&[("HOME", "/home/u")]));
        assert_eq!(p.config_dir, "/home/u/.config/agent-cli-proxy");
        assert_eq!(p.env_file, "/home/u/.config/agent-cli-proxy/.env");
        assert_eq!(
            p.providers_file,
            "/home/u/.config/agent-cli-proxy/providers.json"
        );
        assert_eq!(p.data_dir, "/home/u/.local/share/agent-cli-proxy");
        assert_eq!(p.db_path, "/home/u/.local/share/agent-cli-proxy/proxy.db");
        assert_eq!(
            p.pricing_cache_path,
            "/home/u/.local/share/agent-cli-proxy/pricing-cache.json"
        );
        assert_eq!(
            p.systemd_unit,
            "/home/u/.config/systemd/user/agent-cli-proxy.service"
        );
        assert_eq!(
            p.launchd_agent,
            "/home/u/Library/LaunchAgents/ai.agent-cli-proxy.plist"
        );
    }

    #[test]
    fn xdg_and_data_dir_overrides() {
        let p = Paths::from_env(&env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/xc/"),
            ("XDG_DATA_HOME", "/xd"),
        ]));
        assert_eq!(p.config_dir, "/xc/agent-cli-proxy");
        assert_eq!(p.data_dir, "/xd/agent-cli-proxy");
        assert_eq!(p.systemd_unit, "/xc/systemd/user/agent-cli-proxy.service");
        let p = Paths::from_env(&env(&[
            ("HOME", "/home/u"),
            ("XDG_DATA_HOME", "/xd"),
            ("AGENT_CLI_PROXY_DATA_DIR", "/srv/acp"),
        ]));
        assert_eq!(p.data_dir, "/srv/acp");
        assert_eq!(p.db_path, "/srv/acp/proxy.db");
    }

    #[test]
    fn no_home_falls_back_to_relative_paths() {
        let p = Paths::from_env(&env(&[("HOME", "  ")]));
        assert_eq!(p.home, None);
        assert_eq!(p.data_dir, "data");
        assert_eq!(p.db_path, "data/proxy.db");
        assert_eq!(p.config_dir, ".config/agent-cli-proxy");
    }
}
