//! Terminal prompts for interactive `init`: questions with defaults, confirmations, and
//! secret prompts with echo muted.
//!
//! Echo is muted by running `stty -echo` on the terminal (the crate forbids `unsafe`, so no
//! termios calls); if `stty` is missing the answer is still read, echoed. Secret prompts need
//! stdin to be a terminal, otherwise they fail with the spec's message.

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, Stdio};

use crate::CliError;

/// Reads answers from stdin, writes questions to stdout.
pub(crate) struct Prompter<R: BufRead, W: Write> {
    input: R,
    output: W,
    stdin_is_tty: bool,
}

impl Prompter<std::io::StdinLock<'static>, std::io::Stdout> {
    /// Prompts on the process's stdin and stdout.
    pub(crate) fn stdio() -> Self {
        Prompter {
            input: std::io::stdin().lock(),
            output: std::io::stdout(),
            stdin_is_tty: std::io::stdin().is_terminal(),
        }
    }
}

impl Prompter<std::io::StdinLock<'static>, std::io::Stderr> {
    /// Prompts on stdin and stderr, leaving stdout to the command's answer.
    pub(crate) fn stdin_stderr() -> Self {
        Prompter {
            input: std::io::stdin().lock(),
            output: std::io::stderr(),
            stdin_is_tty: std::io::stdin().is_terminal(),
        }
    }
}

impl<R: BufRead, W: Write> Prompter<R, W> {
    /// `<question> (<default>): `; an empty answer takes the default.
    pub(crate) fn ask(&mut self, question: &str, default: &str) -> Result<String, CliError> {
        self.print_flush(&format!("{question} ({default}): "))?;
        let answer = self.read_line(question)?;
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer
        })
    }

    /// `[Y/n]` or `[y/N]`; `y`/`yes` (any case) is yes, an empty answer the default.
    pub(crate) fn confirm(&mut self, question: &str, default: bool) -> Result<bool, CliError> {
        let hint = if default { "[Y/n]" } else { "[y/N]" };
        self.print_flush(&format!("{question} {hint}: "))?;
        let answer = self.read_line(question)?.to_ascii_lowercase();
        Ok(match answer.as_str() {
            "" => default,
            "y" | "yes" => true,
            _ => false,
        })
    }

    /// A secret: needs a TTY; echo muted; `(configured)` shown when a default exists.
    pub(crate) fn secret(&mut self, question: &str, default: &str) -> Result<String, CliError> {
        if !self.stdin_is_tty {
            return Err(CliError::Runtime(format!(
                "{question} requires a TTY; use init --non-interactive with environment-backed secret flags"
            )));
        }
        let shown = if default.is_empty() {
            format!("{question}: ")
        } else {
            format!("{question} (configured): ")
        };
        self.print_flush(&shown)?;
        let muted = stty("-echo");
        let answer = self.read_line(question);
        if muted {
            stty("echo");
            self.print_flush("\n")?;
        }
        let answer = answer?;
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer
        })
    }

    fn print_flush(&mut self, text: &str) -> Result<(), CliError> {
        self.output.write_all(text.as_bytes())?;
        self.output.flush()?;
        Ok(())
    }

    fn read_line(&mut self, question: &str) -> Result<String, CliError> {
        let mut line = String::new();
        let n = self.input.read_line(&mut line).map_err(|e| {
            CliError::Runtime(format!("could not read the answer to '{question}': {e}"))
        })?;
        if n == 0 {
            return Err(CliError::Runtime(format!(
                "no answer to '{question}' (end of input)"
            )));
        }
        Ok(line.trim().to_owned())
    }
}

/// Runs `stty <arg>` on the inherited terminal; true when it succeeded.
fn stty(arg: &str) -> bool {
    Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompter(input: &str, tty: bool) -> Prompter<&[u8], Vec<u8>> {
        Prompter {
            input: input.as_bytes(),
            output: Vec::new(),
            stdin_is_tty: tty,
        }
    }

    #[test]
    fn ask_takes_default_on_empty_answer() {
        let mut p = prompter("\n  custom  \n", false);
        assert_eq!(p.ask("Q", "d").unwrap(), "d");
        assert_eq!(p.ask("Q", "d").unwrap(), "custom");
        assert!(p.ask("Q", "d").is_err(), "end of input is an error");
        assert_eq!(String::from_utf8_lossy(&p.output), "Q (d): Q (d): Q (d): ");
    }

    #[test]
    fn confirm_rules() {
        let mut p = prompter("\n\nY\nyes\nno\nyup\n", false);
        assert!(p.confirm("Q", true).unwrap());
        assert!(!p.confirm("Q", false).unwrap());
        assert!(p.confirm("Q", false).unwrap());
        assert!(p.confirm("Q", false).unwrap());
        assert!(!p.confirm("Q", true).unwrap());
        assert!(!p.confirm("Q", true).unwrap());
        assert!(String::from_utf8_lossy(&p.output).starts_with("Q [Y/n]: Q [y/N]: "));
    }

    #[test]
    fn secret_without_tty_fails_with_the_spec_message() {
        let mut p = prompter("x\n", false);
        let err = p.secret("CLIProxyAPI proxy key", "proxy").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CLIProxyAPI proxy key requires a TTY; use init --non-interactive with environment-backed secret flags"
        );
    }
}
