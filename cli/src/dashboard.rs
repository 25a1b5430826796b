//! `dashboard hash-password` (`docs/dashboard.md` §2) and the password question of `init`:
//! the IO around the core's Argon2id hashing (a password from the terminal, a salt from the
//! OS).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use agent_cli_proxy_core::dashboard::session;

use crate::init::prompt::Prompter;
use crate::{CliError, CmdResult};

/// Prints the Argon2id PHC string of a password read from the terminal (asked twice, echo
/// muted) or, when stdin is not a terminal, from its first line.
pub(crate) fn hash_password() -> CmdResult {
    let phc = if std::io::stdin().is_terminal() {
        ask_password(&mut Prompter::stdin_stderr())?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Runtime(format!("could not read the password: {e}")))?;
        hash(line.trim_end_matches(['\r', '\n']))?
    };
    crate::out_line!("{phc}");
    crate::err_line!("Set DASHBOARD_PASSWORD_HASH to this value (quoted in an env file).");
    Ok(ExitCode::SUCCESS)
}

/// Asks for a password twice and returns its hash.
pub(crate) fn ask_password<R: BufRead, W: Write>(
    p: &mut Prompter<R, W>,
) -> Result<String, CliError> {
    let first = p.secret("Dashboard password", "")?;
    let again = p.secret("Dashboard password again", "")?;
    if first != again {
        return Err(CliError::Runtime("the two passwords differ".to_owned()));
    }
    hash(&first)
}

fn hash(password: &str) -> Result<String, CliError> {
    if password.is_empty() {
        return Err(CliError::Runtime(
            "the password must not be empty".to_owned(),
        ));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| CliError::Runtime(format!("no random source for the salt: {e}")))?;
    session::hash_password(password, salt)
        .ok_or_else(|| CliError::Runtime("could not hash the password".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_empty_passwords_are_refused() {
        let phc = hash("s3cret pass").unwrap();
        assert!(session::verify_password(&phc, "s3cret pass"));
        assert!(hash("").is_err());
        assert_ne!(
            hash("same").unwrap(),
            hash("same").unwrap(),
            "a fresh salt each time"
        );
    }
}
